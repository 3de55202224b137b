"""Each gan.* family: learns on a tiny set, emits its declared modality, round-trips, resumes exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from msaug import Budget, DataSpec, FitContext, Image, Label, Noise, Pairs
from msaug.errors import CheckpointError, ConfigError
from msaug.resize import resize_label
from msaug.rng import BatchRNG
from msaug.train.stages import SMALLEST_COMPONENT_KEY, JointStage, LabelGeneratorStage, LabelUpscalerStage, TranslatorStage

from .conftest import CLASSES, QUICK, SIZE, images_for, synthetic_index_labels, synthetic_multilabel


def make_pairs(family: str, spec: DataSpec, labels: torch.Tensor) -> Pairs:
    images = images_for(labels)
    if family == "label_generator":
        return Pairs(Noise(128), spec.label, None, labels)
    if family == "label_upscaler":
        low = resize_label(labels, SIZE // 4, spec.encoding)
        return Pairs(spec.label.at(SIZE // 4), spec.label, low, labels)
    if family == "translator":
        return Pairs(spec.label, spec.image, labels, images)
    return Pairs(Noise(128), (spec.image, spec.label), None, (images, labels))


STAGES = {
    "label_generator": LabelGeneratorStage,
    "label_upscaler": LabelUpscalerStage,
    "translator": TranslatorStage,
    "joint": JointStage,
}


def fit(stage, pairs: Pairs, out: Path, steps: int, resume: bool = True) -> dict:
    return stage.fit(pairs, Budget(steps=steps), FitContext(out, seed=3, resume=resume, show_progress=False))


def sample(stage, pairs: Pairs, n: int = 8, seed: int = 0):
    x = None if pairs.inputs is None else pairs.inputs[:n]
    return stage.generate(x, BatchRNG.for_indices(seed, range(n)))


def error_to_real(family: str, stage, pairs: Pairs) -> float:
    """How far generated outputs are from the real ones (lower is better), per family."""
    out = sample(stage, pairs, n=12)
    if family in ("label_generator",):
        return float((out.mean(dim=(0, 2, 3)) - pairs.targets.mean(dim=(0, 2, 3))).abs().sum())
    if family == "label_upscaler":
        return float((out.argmax(1) != pairs.targets.argmax(1)).float().mean())
    if family == "translator":
        return float((out - pairs.targets).abs().mean())
    image, label = out
    real_image, real_label = pairs.targets
    return float(
        (label.mean(dim=(0, 2, 3)) - real_label.mean(dim=(0, 2, 3))).abs().sum() + (image.mean() - real_image.mean()).abs()
    )


def assert_valid_output(stage, out) -> None:
    outs = out if isinstance(out, tuple) else (out,)
    assert len(outs) == len(stage.outputs)
    for tensor, modality in zip(outs, stage.outputs):
        assert tensor.dtype == torch.float32
        if isinstance(modality, Label):
            assert tuple(tensor.shape[1:]) == (modality.channels, modality.size, modality.size)
            assert set(tensor.unique().tolist()) <= {0.0, 1.0}
            if modality.encoding == "index":
                assert torch.equal(tensor.sum(1), torch.ones_like(tensor[:, 0]))
        else:
            assert isinstance(modality, Image)
            assert tuple(tensor.shape[1:]) == (modality.channels, modality.size, modality.size)
            assert float(tensor.min()) >= 0.0 and float(tensor.max()) <= 1.0


@pytest.mark.parametrize("family", list(STAGES))
def test_fit_learns_and_outputs_declared_modality(family: str, spec: DataSpec, labels: torch.Tensor, tmp_path: Path) -> None:
    pairs = make_pairs(family, spec, labels)
    stage = STAGES[family](QUICK, spec)
    before = error_to_real(family, stage, pairs)
    summary = fit(stage, pairs, tmp_path, steps=40)
    after = error_to_real(family, stage, pairs)
    assert after < before, f"{family}: distance to real data did not drop ({before:.3f} -> {after:.3f})"
    assert summary["steps"] == 40 and summary["images_per_second"] > 0
    assert_valid_output(stage, sample(stage, pairs))
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert all(torch.isfinite(torch.tensor([r["d_loss"], r["g_loss"]])).all() for r in rows)
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [f"step_{s:06d}.png" for s in (10, 20, 30, 40)]
    assert json.loads((tmp_path / "checkpoint" / "state.json").read_text())["step"] == 40


def test_multilabel_outputs_are_independent_binary_channels(tmp_path: Path) -> None:
    labels = synthetic_multilabel(10)
    spec = DataSpec(("lung", "clavicle"), "multilabel", 1, SIZE)
    stage = LabelGeneratorStage(QUICK, spec)
    fit(stage, Pairs(Noise(128), spec.label, None, labels), tmp_path, steps=5)
    out = stage.generate(None, BatchRNG.for_indices(0, range(6)))
    assert out.shape == (6, 2, SIZE, SIZE)
    assert set(out.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("family", list(STAGES))
def test_state_dict_round_trip_gives_identical_samples(family: str, spec: DataSpec, labels: torch.Tensor, tmp_path: Path) -> None:
    pairs = make_pairs(family, spec, labels)
    stage = STAGES[family](QUICK, spec)
    fit(stage, pairs, tmp_path, steps=3)
    state = stage.state_dict()
    # the weights, and for the label families the learnt smallest real component areas (msaug.train.specks)
    assert state and all(k.startswith("generator.") or k == SMALLEST_COMPONENT_KEY for k in state)
    fresh = STAGES[family](QUICK, spec)
    fresh.load_state_dict(state)
    a, b = sample(stage, pairs), sample(fresh, pairs)
    for x, y in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
        assert torch.equal(x, y)


def test_load_state_dict_rejects_other_params(spec: DataSpec, tmp_path: Path) -> None:
    state = LabelGeneratorStage({"width": 8}, spec).state_dict()
    with pytest.raises(CheckpointError, match="params"):
        LabelGeneratorStage({"width": 16}, spec).load_state_dict(state)


@pytest.mark.parametrize("family", ["label_generator", "translator"])
def test_resume_continues_at_saved_step_and_matches_uninterrupted_run(
    family: str, spec: DataSpec, labels: torch.Tensor, tmp_path: Path
) -> None:
    pairs = make_pairs(family, spec, labels)
    params = {**QUICK, "checkpoint_every": 4, "r1_every": 3}
    straight = STAGES[family](params, spec)
    fit(straight, pairs, tmp_path / "straight", steps=10)

    first = STAGES[family](params, spec)
    fit(first, pairs, tmp_path / "split", steps=6)  # checkpoints at 4 and 6 (end of budget)
    second = STAGES[family](params, spec)
    summary = fit(second, pairs, tmp_path / "split", steps=10)
    assert summary["resumed_from"] == 6 and summary["steps"] == 10
    for key, value in straight.trainer.G.state_dict().items():
        assert torch.equal(value, second.trainer.G.state_dict()[key]), key
    steps = [json.loads(line)["step"] for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [4, 5, 6, 8, 10]  # every log_every steps and at every checkpoint, no duplicates


def test_resume_false_starts_over(spec: DataSpec, labels: torch.Tensor, tmp_path: Path) -> None:
    pairs = make_pairs("label_generator", spec, labels)
    fit(LabelGeneratorStage(QUICK, spec), pairs, tmp_path, steps=5)
    summary = fit(LabelGeneratorStage(QUICK, spec), pairs, tmp_path, steps=5, resume=False)
    assert summary["resumed_from"] is None and summary["steps"] == 5


def test_corrupt_checkpoint_is_reported(spec: DataSpec, labels: torch.Tensor, tmp_path: Path) -> None:
    pairs = make_pairs("label_generator", spec, labels)
    fit(LabelGeneratorStage(QUICK, spec), pairs, tmp_path, steps=5)
    tensors = next((tmp_path / "checkpoint").glob("state-*.safetensors"))
    tensors.write_bytes(tensors.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(CheckpointError, match="checksum"):
        fit(LabelGeneratorStage(QUICK, spec), pairs, tmp_path, steps=8)


def test_checkpoint_tensors_are_safetensors_with_json_meta(spec: DataSpec, labels: torch.Tensor, tmp_path: Path) -> None:
    fit(LabelGeneratorStage(QUICK, spec), make_pairs("label_generator", spec, labels), tmp_path, steps=5)
    meta = json.loads((tmp_path / "checkpoint" / "state.json").read_text())
    tensors = load_file(tmp_path / "checkpoint" / meta["tensors"])
    assert meta["step"] == 5 and meta["tensors"] == "state-000005.safetensors"
    assert {"rng.torch", "rng.sampler"} <= set(tensors)
    assert any(k.startswith("ema.") for k in tensors) and any(k.startswith("opt_d.") for k in tensors)


def test_generation_is_per_index_whatever_the_sharding(spec: DataSpec, labels: torch.Tensor, tmp_path: Path) -> None:
    pairs = make_pairs("joint", spec, labels)
    stage = JointStage(QUICK, spec)
    fit(stage, pairs, tmp_path, steps=3)
    # two shards of fixed index blocks, generated in reverse order, equal one single pass
    whole = stage.generate(None, BatchRNG.for_indices(7, range(8)))
    shard_b = stage.generate(None, BatchRNG.for_indices(7, range(4, 8)))
    shard_a = stage.generate(None, BatchRNG.for_indices(7, range(0, 4)))
    for w, a, b in zip(whole, shard_a, shard_b):
        torch.testing.assert_close(w, torch.cat([a, b]), atol=1e-5, rtol=0)
    again = stage.generate(None, BatchRNG.for_indices(7, range(0, 4)))
    assert all(torch.equal(x, y) for x, y in zip(again, shard_a))
    other_seed = stage.generate(None, BatchRNG.for_indices(8, range(0, 4)))
    assert not torch.equal(other_seed[0], shard_a[0])


def test_upscaler_noise_varies_boundaries_but_keeps_labels_hard(spec: DataSpec, labels: torch.Tensor, tmp_path: Path) -> None:
    pairs = make_pairs("label_upscaler", spec, labels)
    stage = LabelUpscalerStage(QUICK, spec)
    fit(stage, pairs, tmp_path, steps=3)
    x = pairs.inputs[:1].repeat(4, 1, 1, 1)
    out = stage.generate(x, BatchRNG.for_indices(0, range(4)))
    assert set(out.unique().tolist()) == {0.0, 1.0}
    assert stage.input == Label(CLASSES, SIZE // 4, "index") and stage.output == Label(CLASSES, SIZE, "index")


@pytest.mark.parametrize("encoding", ["index", "multilabel"])
def test_max_pooled_upscaler_draws_only_inside_the_coarse_structures(encoding: str) -> None:
    """A coarse pixel of a max-pooled map says 'a structure passes under here': the output may
    thin it inside that block (whatever the weights) but never draws outside it."""
    from msaug.nn import LabelUpscalerNet

    torch.manual_seed(0)
    coarse_struct = torch.zeros(1, 1, 8, 8)
    coarse_struct[0, 0, 4, 1:7] = 1  # a one-pixel line at 8 px
    coarse = torch.cat([1 - coarse_struct, coarse_struct], 1) if encoding == "index" else coarse_struct
    k = coarse.shape[1]
    net = LabelUpscalerNet(k, 8, 32, width=8, prior="max", encoding=encoding)
    with torch.no_grad():
        net.head.bias.fill_(0.0)
        net.head.weight.normal_(0, 5.0)  # arbitrary, strong network opinions
        logits = net(coarse, torch.randn(1, 4, 32, 32))
    drawn = logits.argmax(1)[0] == 1 if encoding == "index" else logits[0, 0] > 0
    allowed = torch.nn.functional.interpolate(coarse_struct, size=32, mode="nearest")[0, 0] > 0.5
    assert not (drawn & ~allowed).any()
    assert 0 < int(drawn.sum()) < int(allowed.sum())  # thinner than the 4 px block, but there
    # an area prior instead keeps the block's interior: a 4 px wide line stays at least 1 px
    area = LabelUpscalerNet(k, 8, 32, width=8, prior="area", encoding=encoding)
    with torch.no_grad():
        area.head.weight.copy_(net.head.weight)
        area.head.bias.fill_(0.0)
        area_logits = area(coarse, torch.randn(1, 4, 32, 32))
    area_drawn = area_logits.argmax(1)[0] == 1 if encoding == "index" else area_logits[0, 0] > 0
    assert area_drawn[17:19, 8:24].all()


def test_upscaler_takes_its_prior_from_the_data_spec(tmp_path: Path) -> None:
    spec = DataSpec(CLASSES, "index", 1, SIZE, label_downsample="max")
    stage = LabelUpscalerStage(QUICK, spec)
    assert stage.generator.prior == "max"
    assert stage.input == Label(CLASSES, SIZE // 4, "index", "max")
    assert LabelUpscalerStage(QUICK, DataSpec(CLASSES, "index", 1, SIZE)).generator.prior == "area"


def test_upscaler_rejects_output_not_larger_than_input(spec: DataSpec) -> None:
    with pytest.raises(ConfigError, match="in_size"):
        LabelUpscalerStage({"in_size": SIZE}, spec)


def test_params_are_validated(spec: DataSpec) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="grad_accum"):
        LabelGeneratorStage({"batch_size": 6, "grad_accum": 4}, spec)
    with pytest.raises(ValidationError, match="unknown augmentation 'rotate'"):
        TranslatorStage({"augment": "rotate"}, spec)
    with pytest.raises(ValidationError):
        JointStage({"learning_rate": 1e-3}, spec)


def test_subclass_postprocessing_hooks_apply_to_generated_outputs(spec: DataSpec, labels: torch.Tensor, tmp_path: Path) -> None:
    class NoLesion(JointStage):
        def postprocess_label(self, label: torch.Tensor) -> torch.Tensor:
            label = label.clone()
            label[:, 0] += label[:, 2]
            label[:, 2] = 0
            return label

        def postprocess_image(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
            return image * (1 - label[:, :1])  # black background

    stage = NoLesion({**QUICK, "width": 8}, spec)
    fit(stage, make_pairs("joint", spec, labels), tmp_path, steps=2)
    image, label = stage.generate(None, BatchRNG.for_indices(0, range(4)))
    assert float(label[:, 2].sum()) == 0.0
    assert float((image * label[:, :1]).abs().max()) == 0.0


def test_grad_accumulation_trains(spec: DataSpec, labels: torch.Tensor, tmp_path: Path) -> None:
    stage = LabelGeneratorStage({**QUICK, "grad_accum": 2, "r1_every": 1}, spec)
    summary = fit(stage, make_pairs("label_generator", spec, labels), tmp_path, steps=3)
    assert summary["steps"] == 3 and summary["r1"] >= 0


def test_synthetic_labels_fixture_is_valid() -> None:
    labels = synthetic_index_labels(4)
    assert torch.equal(labels.sum(1), torch.ones(4, SIZE, SIZE))


@pytest.mark.parametrize("family", list(STAGES))
def test_generation_layout_matches_the_contiguous_network_and_leaves_dense_weights(family, tmp_path):
    """Generation runs the generator in channels_last on the CPU (faster there); the pairs agree with the
    network run in the ordinary layout, and the saved weights stay dense for safetensors."""
    import copy

    spec = DataSpec(("lung", "clavicle"), "multilabel", 1, SIZE)
    stage = STAGES[family](None, spec)
    pairs = make_pairs(family, spec, synthetic_multilabel(8))
    reference = copy.deepcopy(stage.generator)
    out = sample(stage, pairs, n=4)
    assert next(p for p in stage.generator.parameters() if p.dim() == 4).is_contiguous(memory_format=torch.channels_last)
    assert all(t.is_contiguous() for t in stage.state_dict().values())
    stage.generator = reference  # the same weights in the ordinary layout
    stage._layout = torch.contiguous_format
    expected = sample(stage, pairs, n=4)
    for a, b in zip(out if isinstance(out, tuple) else (out,), expected if isinstance(expected, tuple) else (expected,)):
        assert a.is_contiguous()
        assert torch.allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("cin,cout", [(16, 16), (16, 8)])
def test_spade_block_equals_the_two_convolution_formula(cin, cout):
    """The block normalises x once for its main path and its shortcut, and at generation SPADE
    works in place: the output (bit for bit when generating) and the gradients are those of the
    paper's formula."""
    import torch.nn.functional as F

    from msaug.nn.layers import SPADEResBlock

    torch.manual_seed(0)
    block = SPADEResBlock(cin, cout, label_channels=3)
    x = torch.randn(2, cin, 8, 8, requires_grad=True)
    label = torch.rand(2, 3, 16, 16)

    def spade(layer, t, lab):  # norm(t) * (1 + gamma(h)) + beta(h), two convolutions
        h = layer.shared(F.interpolate(lab, size=t.shape[-2:], mode="nearest"))
        return layer.norm(t) * (1 + layer.gamma(h)) + layer.beta(h)

    def reference(t):
        h = block.conv1(F.leaky_relu(spade(block.norm1, t, label), 0.2))
        h = block.conv2(F.leaky_relu(spade(block.norm2, h, label), 0.2))
        return h + (t if block.shortcut is None else block.shortcut(spade(block.shortcut_norm, t, label)))

    out, expected = block(x, label), reference(x)
    assert out.shape == (2, cout, 8, 8)
    assert torch.allclose(out, expected, atol=1e-5)
    grads = torch.autograd.grad(out.square().sum(), [block.norm1.gamma.weight, block.norm2.beta.bias, x])
    expected_grads = torch.autograd.grad(expected.square().sum(), [block.norm1.gamma.weight, block.norm2.beta.bias, x])
    for a, b in zip(grads, expected_grads):
        assert a.abs().max() > 0 and torch.allclose(a, b, atol=1e-4, rtol=1e-4)
    with torch.inference_mode():
        generated, formula = block(x.detach(), label), reference(x.detach())
    assert torch.equal(generated, formula)
