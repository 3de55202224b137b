"""Generated label specks: areas learnt from the real maps, pieces below them removed, the switch, old files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from msaug import Budget, DataSpec, FitContext, Noise, Pairs
from msaug.errors import CheckpointError
from msaug.resize import resize_label
from msaug.rng import BatchRNG
from msaug.train.diffusion import DiffusionLabelGeneratorStage
from msaug.train.specks import SPECK_SHARE, remove_specks, smallest_components
from msaug.train.stages import SMALLEST_COMPONENT_KEY, LabelGeneratorStage, LabelUpscalerStage

from .conftest import CLASSES, QUICK, SIZE, synthetic_index_labels, synthetic_multilabel


def one_hot(index: torch.Tensor, k: int = 3) -> torch.Tensor:
    """``[N, H, W]`` class indices to one-hot ``[N, k, H, W]`` floats."""
    return F.one_hot(index, k).permute(0, 3, 1, 2).float()


def test_smallest_components_are_learnt_per_channel_with_4_connectivity() -> None:
    idx = torch.zeros(2, 10, 10, dtype=torch.long)
    idx[0, 1:4, 1:4] = 1  # 9 px
    idx[0, 6:8, 6:9] = 1  # 6 px
    idx[1, 0:5, 0:5] = 1  # 25 px
    idx[1, 7, 7] = 2  # two diagonal pixels: two 4-connected components of 1 px
    idx[1, 8, 8] = 2
    assert smallest_components(one_hot(idx), "index").tolist() == [0, 6, 1]
    multi = torch.zeros(3, 2, 10, 10)
    multi[0, 0, 0:4, 0:4] = 1  # 16 px
    multi[1, 0, 2:5, 2:5] = 1  # 9 px, overlapping channel 1: channels are counted apart
    multi[1, 1, 0:10, 0:10] = 1  # 100 px
    assert smallest_components(multi, "multilabel").tolist() == [9, 100]
    # a class that never occurs learns no area
    assert smallest_components(one_hot(torch.zeros(1, 6, 6, dtype=torch.long)), "index").tolist() == [0, 0, 0]


def test_pieces_below_the_area_go_those_at_it_stay() -> None:
    idx = torch.zeros(1, 12, 12, dtype=torch.long)
    idx[0, 0:3, 0:3] = 1  # 9 px: at the area, kept
    idx[0, 6:8, 6:10] = 1  # 8 px: below, removed (only background around: background)
    idx[0, 11, 0] = 1  # 1 px in a corner: removed
    label = one_hot(idx)
    out = remove_specks(label, torch.tensor([0, 9, 0]), "index")
    expected = torch.zeros_like(idx)
    expected[0, 0:3, 0:3] = 1
    assert torch.equal(out, one_hot(expected))
    kept = remove_specks(label, torch.tensor([0, 8, 0]), "index")
    expected[0, 6:8, 6:10] = 1  # at an area of 8 the 8 px piece stays, the 1 px piece still goes
    assert torch.equal(kept, one_hot(expected))


def test_index_fill_takes_the_surrounding_class() -> None:
    idx = torch.zeros(1, 12, 12, dtype=torch.long)
    idx[0, 1:10, 1:10] = 1  # an organ
    idx[0, 4:6, 4:6] = 2  # a 4 px lesion inside it: becomes organ
    idx[0, 0, 11] = 2  # a 1 px lesion on background: becomes background
    idx[0, 9:11, 10] = 2  # a 2 px lesion touching the organ at one pixel, background at five
    out = remove_specks(one_hot(idx), torch.tensor([0, 0, 5]), "index")
    expected = idx.clone()
    expected[0, 4:6, 4:6] = 1
    expected[0, 0, 11] = 0
    expected[0, 9:11, 10] = 0  # outside: (9,9) organ; (8,10), (11,10), (9,11), (10,11), (10,9) background: background wins
    assert torch.equal(out, one_hot(expected))
    assert set(out.sum(1).unique().tolist()) == {1.0}  # still exactly one class per pixel


def test_fill_majority_and_tie_rule() -> None:
    # a 1 px lesion with 3 organ neighbours and 1 background neighbour takes the organ
    idx = torch.zeros(1, 5, 5, dtype=torch.long)
    idx[0, 1:4, 0:2] = 1
    idx[0, 2, 3] = 1
    idx[0, 1, 2] = 1
    idx[0, 2, 2] = 2  # neighbours: (1,2) organ, (3,2) background, (2,1) organ, (2,3) organ
    out = remove_specks(one_hot(idx), torch.tensor([0, 0, 2]), "index")
    assert int(out[0].argmax(0)[2, 2]) == 1
    # two organ and two background neighbours: a tie goes to the lower class, background
    idx[0, 2, 3] = 0
    out = remove_specks(one_hot(idx), torch.tensor([0, 0, 2]), "index")
    assert int(out[0].argmax(0)[2, 2]) == 0


def test_multilabel_switches_only_the_channel_off() -> None:
    label = torch.zeros(1, 2, 8, 8)
    label[0, 0, 0:4, 0:4] = 1  # 16 px: kept
    label[0, 0, 6, 6] = 1  # 1 px: removed
    label[0, 1, 5:8, 5:8] = 1  # 9 px under the lowered speck: channel 1 keeps it
    out = remove_specks(label, torch.tensor([4, 4]), "multilabel")
    expected = label.clone()
    expected[0, 0, 6, 6] = 0
    assert torch.equal(out, expected)


def test_nothing_to_remove_returns_the_maps_themselves() -> None:
    label = one_hot(torch.randint(0, 3, (2, 8, 8), generator=torch.Generator().manual_seed(0)))
    assert remove_specks(label, torch.tensor([0, 1, 1]), "index") is label  # vessel-like data: 1 px pieces are real
    assert remove_specks(label, torch.tensor([0, 0, 0]), "index") is label
    single = torch.zeros(1, 3, 8, 8)
    single[0, 0] = 1
    assert remove_specks(single, torch.tensor([0, 50, 50]), "index") is single


def test_each_map_is_cleaned_on_its_own() -> None:
    maps = one_hot(torch.randint(0, 3, (6, 16, 16), generator=torch.Generator().manual_seed(1)))
    areas = torch.tensor([0, 3, 2])
    whole = remove_specks(maps, areas, "index")
    parts = torch.cat([remove_specks(maps[i : i + 1], areas, "index") for i in (0, 1, 2, 3, 4, 5)])
    assert torch.equal(whole, parts) and not torch.equal(whole, maps)


# --------------------------------------------------------------------------- the stages
def fitted_generator(params: dict, tmp_path: Path, spec: DataSpec) -> LabelGeneratorStage:
    stage = LabelGeneratorStage({**QUICK, **params}, spec)
    summary = stage.fit(Pairs(Noise(128), spec.label, None, synthetic_index_labels(12)), Budget(steps=2),
                        FitContext(tmp_path, seed=3, show_progress=False))
    stage.summary = summary
    return stage


def test_label_stages_learn_the_areas_report_and_save_them(spec: DataSpec, tmp_path: Path) -> None:
    labels = synthetic_index_labels(12)
    # the synthetic organ ring around the 9 px lesion; its smallest is the narrowest rectangle
    expected = smallest_components(labels, "index").tolist()
    assert expected[0] == 0 and expected[2] == 9 and expected[1] > 9
    stage = fitted_generator({}, tmp_path / "gen", spec)
    assert stage.summary["smallest_real_component_px"] == {"organ": expected[1], "lesion": 9}
    state = stage.state_dict()
    assert state[SMALLEST_COMPONENT_KEY].tolist() == expected
    fresh = LabelGeneratorStage(QUICK, spec)
    fresh.load_state_dict(state)
    assert fresh.smallest_real_component.tolist() == expected
    rng = BatchRNG.for_indices(0, range(6))
    assert torch.equal(fresh.generate(None, rng), stage.generate(None, BatchRNG.for_indices(0, range(6))))
    # the upscaler learns at its output size, from the maps it trains on
    up = LabelUpscalerStage(QUICK, spec)
    low = resize_label(labels, SIZE // 4, "index")
    summary = up.fit(Pairs(spec.label.at(SIZE // 4), spec.label, low, labels), Budget(steps=1),
                     FitContext(tmp_path / "up", seed=3, show_progress=False))
    assert summary["smallest_real_component_px"] == {"organ": expected[1], "lesion": 9}


def test_removal_applies_in_generation_and_before_a_subclass_hook(spec: DataSpec, tmp_path: Path) -> None:
    seen: list[torch.Tensor] = []

    class Hooked(LabelGeneratorStage):
        def postprocess_label(self, label: torch.Tensor) -> torch.Tensor:
            seen.append(label)
            return label

    stage = Hooked(QUICK, spec)
    stage.fit(Pairs(Noise(128), spec.label, None, synthetic_index_labels(12)), Budget(steps=2),
              FitContext(tmp_path, seed=3, show_progress=False))
    state = stage.state_dict()
    raw = LabelGeneratorStage({**QUICK, "clean_specks": False}, spec)
    raw.load_state_dict(state)
    unclean = raw.generate(None, BatchRNG.for_indices(0, range(6)))
    stage.smallest_real_component = torch.tensor([0, 10 * SIZE * SIZE + 10, 10 * SIZE * SIZE + 10])  # every piece is below a tenth of it
    out = stage.generate(None, BatchRNG.for_indices(0, range(6)))
    assert float(unclean[:, 1:].sum()) > 0  # the raw maps have structures ...
    assert torch.equal(out[:, 0], torch.ones_like(out[:, 0]))  # ... which all go: background everywhere
    assert torch.equal(seen[-1], out)  # the subclass hook saw the cleaned maps
    stage.smallest_real_component = state[SMALLEST_COMPONENT_KEY].clone()
    assert torch.equal(stage.generate(None, BatchRNG.for_indices(0, range(6))),
                       remove_specks(unclean, stage.smallest_real_component * SPECK_SHARE, "index"))


def test_switched_off_or_loaded_from_an_old_file_leaves_maps_unchanged(spec: DataSpec, tmp_path: Path) -> None:
    stage = fitted_generator({}, tmp_path, spec)
    state = stage.state_dict()
    old = {k: v for k, v in state.items() if k != SMALLEST_COMPONENT_KEY}  # saved before the areas existed
    from_old = LabelGeneratorStage(QUICK, spec)
    from_old.load_state_dict(old)
    assert from_old.smallest_real_component is None and SMALLEST_COMPONENT_KEY not in from_old.state_dict()
    off = LabelGeneratorStage({**QUICK, "clean_specks": False}, spec)
    off.load_state_dict(state)
    assert off.smallest_real_component is not None
    everything = torch.tensor([0, SIZE * SIZE + 1, SIZE * SIZE + 1])
    from_old_out = from_old.generate(None, BatchRNG.for_indices(2, range(6)))
    off.smallest_real_component = everything  # the switch wins over any learnt area
    assert torch.equal(off.generate(None, BatchRNG.for_indices(2, range(6))), from_old_out)
    assert float(from_old_out[:, 1:].sum()) > 0
    assert LabelGeneratorStage.Params().clean_specks is True


def test_wrongly_shaped_areas_in_a_file_are_reported(spec: DataSpec) -> None:
    state = LabelGeneratorStage(QUICK, spec).state_dict()
    state[SMALLEST_COMPONENT_KEY] = torch.tensor([1, 2])
    with pytest.raises(CheckpointError, match=r"smallest_real_component.*shape \(2,\).*expected \(3,\)"):
        LabelGeneratorStage(QUICK, spec).load_state_dict(state)


def test_diffusion_label_generator_learns_and_applies_the_areas(tmp_path: Path) -> None:
    spec = DataSpec(("vessel", "disc"), "multilabel", 3, SIZE)
    labels = synthetic_multilabel(6)
    tiny = {"width": 4, "batch_size": 4, "levels": 2, "sample_steps": 3, "log_every": 2, "sample_every": 100}
    stage = DiffusionLabelGeneratorStage(tiny, spec)
    summary = stage.fit(Pairs(Noise(1), spec.label, None, labels), Budget(steps=1), FitContext(tmp_path, seed=5, show_progress=False))
    expected = smallest_components(labels, "multilabel").tolist()
    assert summary["smallest_real_component_px"] == {"vessel": expected[0], "disc": expected[1]}
    assert stage.state_dict()[SMALLEST_COMPONENT_KEY].tolist() == expected
    off = DiffusionLabelGeneratorStage({**tiny, "clean_specks": False}, spec)
    off.load_state_dict(stage.state_dict())
    unclean = off.generate(None, BatchRNG.for_indices(0, range(3)))
    out = stage.generate(None, BatchRNG.for_indices(0, range(3)))
    assert torch.equal(out, remove_specks(unclean, torch.tensor(expected) * SPECK_SHARE, "multilabel"))
    stage.smallest_real_component = torch.tensor(expected) * 10  # the bar at the real pieces' own areas
    out = stage.generate(None, BatchRNG.for_indices(0, range(3)))
    assert torch.equal(out, remove_specks(unclean, torch.tensor(expected), "multilabel"))
    assert not torch.equal(out, unclean)  # an untrained model's maps are speckled


def test_a_stage_removes_only_pieces_below_a_tenth_of_the_smallest_real_piece(spec: DataSpec, tmp_path: Path) -> None:
    stage = LabelGeneratorStage(QUICK, spec)
    stage.smallest_real_component = torch.tensor([0, 100, 100])
    maps = torch.zeros(1, 3, SIZE, SIZE)
    maps[0, 0] = 1
    for (r, c, side) in ((1, 1, 3), (8, 8, 4)):  # a 9 px piece (below 10: a speck) and a 16 px one (kept)
        maps[0, 0, r:r + side, c:c + side] = 0
        maps[0, 1, r:r + side, c:c + side] = 1
    out = stage.remove_specks(maps)
    assert float(out[0, 1, 1:4, 1:4].sum()) == 0 and float(out[0, 0, 1:4, 1:4].sum()) == 9
    assert float(out[0, 1, 8:12, 8:12].sum()) == 16
