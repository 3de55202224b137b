"""The xray stages: registered, wired to the engine, and applying the domain's post-processing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from msaug import BatchRNG, Budget, ConfigError, FitContext, Image, Label, Noise, Pairs
from msaug.plugins import get_registries
from msaug.train.stages import JointStage, LabelGeneratorStage, LabelUpscalerStage, TranslatorStage
from msaug_xray import ANATOMY_CLASSES, PhantomDataset, anatomical_postprocess
from msaug_xray.stages import AnatomyMask, JointRadiograph, MaskUpscale, Radiograph, to_detector_levels

TINY = {"width": 4, "batch_size": 4, "sample_every": 1000, "checkpoint_every": 1000, "log_every": 1}


@pytest.fixture(scope="module")
def data():
    dataset = PhantomDataset(32, count=8, seed=0)
    return dataset.spec, [dataset[i] for i in range(len(dataset))]


def _pairs(stage, samples) -> Pairs:
    inputs = None if isinstance(stage.input, Noise) else torch.stack([stage.input.view(s) for s in samples])
    targets = tuple(torch.stack([o.view(s) for s in samples]) for o in stage.outputs)
    return Pairs(stage.input, stage.output, inputs, targets if len(targets) > 1 else targets[0])


def test_registered_under_their_names_as_engine_subclasses():
    stages = get_registries().stages
    expected = {
        "xray.anatomy_mask": LabelGeneratorStage,
        "xray.mask_upscale": LabelUpscalerStage,
        "xray.image": TranslatorStage,
        "xray.joint": JointStage,
    }
    for name, family in expected.items():
        assert issubclass(stages.get(name), family), name


def test_modalities_follow_the_chain_defaults(data):
    spec, _ = data
    assert AnatomyMask({}, spec).output == Label(ANATOMY_CLASSES, 64, "multilabel")
    upscale = MaskUpscale({"in_size": 16}, spec)
    assert upscale.input == Label(ANATOMY_CLASSES, 16, "multilabel") and upscale.output.size == 32
    assert Radiograph({}, spec).output == Image(1, 32)
    assert JointRadiograph({}, spec).outputs == (Image(1, 32), Label(ANATOMY_CLASSES, 32, "multilabel"))
    with pytest.raises(ConfigError, match="out_size .* must be larger than in_size"):
        MaskUpscale({}, spec)  # default in_size 64 is not below data.size 32
    with pytest.raises(ValueError, match="extra_forbidden|Extra inputs"):
        AnatomyMask({"sise": 32}, spec)


@pytest.mark.slow
def test_label_stages_return_postprocessed_maps(data, tmp_path):
    spec, samples = data
    stage = AnatomyMask({**TINY, "size": 16, "noise_dim": 8}, spec)
    summary = stage.fit(_pairs(stage, samples), Budget(steps=2), FitContext(out_dir=tmp_path, show_progress=False))
    assert summary["steps"] == 2
    out = stage.generate(None, BatchRNG.for_indices(0, range(6)))
    assert out.shape == (6, 5, 16, 16) and set(out.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(out, anatomical_postprocess(out, ANATOMY_CLASSES))  # already clean
    again = stage.generate(None, BatchRNG.for_indices(0, [3]))
    assert torch.equal(again[0], out[3])  # row b depends only on stream b
    restored = AnatomyMask({**TINY, "size": 16, "noise_dim": 8}, spec)
    restored.load_state_dict(stage.state_dict())
    assert torch.equal(restored.generate(None, BatchRNG.for_indices(0, range(6))), out)


def test_postprocess_hook_is_the_anatomical_one():
    spec = PhantomDataset(32, count=1).spec
    raw = torch.zeros(1, 5, 32, 32)
    raw[0, 0, 8:20, 20:28] = 1.0  # left lung, image right
    raw[0, 0, 2:4, 2:4] = 1.0  # stray blob on the wrong side
    for stage in (AnatomyMask({"size": 32}, spec), MaskUpscale({"in_size": 16}, spec), JointRadiograph({}, spec)):
        cleaned = stage.postprocess_label(raw)
        assert cleaned[0, 0].sum() == 12 * 8 and cleaned[0, 0, 2:4, 2:4].sum() == 0


@pytest.mark.slow
def test_radiographs_are_on_the_12_bit_grid(data, tmp_path):
    spec, samples = data
    stage = Radiograph({**TINY, "noise_dim": 8}, spec)
    stage.fit(_pairs(stage, samples), Budget(steps=1), FitContext(out_dir=tmp_path, show_progress=False))
    labels = torch.stack([torch.from_numpy(s.label) for s in samples[:3]])
    image = stage.generate(labels, BatchRNG.for_indices(0, range(3)))
    assert image.shape == (3, 1, 32, 32)
    levels = image.numpy() * 4095
    assert np.allclose(levels, np.round(levels), atol=1e-3) and image.min() >= 0 and image.max() <= 1
    assert torch.equal(to_detector_levels(torch.tensor([-0.5, 0.5, 2.0])), torch.tensor([0.0, 2048 / 4095, 1.0]))
