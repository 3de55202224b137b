"""The diffusion.* families: MONAI parts configured by the params, hardening as the GAN family, resume, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from monai.networks.nets import DiffusionModelUNet
from monai.networks.schedulers import DDIMScheduler
from pydantic import ValidationError

from msaug import Budget, DataSpec, FitContext, Noise, Pairs
from msaug.errors import ConfigError
from msaug.nn.heads import harden_logits
from msaug.rng import BatchRNG
from msaug.train.checkpoint import load_checkpoint
from msaug.train.diffusion import DiffusionLabelGeneratorStage, DiffusionTranslatorStage
from msaug.train.specks import SPECK_SHARE, remove_specks

from .conftest import CLASSES, SIZE, images_for, synthetic_multilabel

TINY = {"width": 4, "batch_size": 4, "sample_steps": 3, "log_every": 2, "sample_every": 100, "checkpoint_every": 2}


def label_pairs(spec: DataSpec, labels: torch.Tensor) -> Pairs:
    return Pairs(Noise(1), spec.label, None, labels)


def fit(stage, pairs: Pairs, out: Path, steps: int) -> dict:
    return stage.fit(pairs, Budget(steps=steps), FitContext(out, seed=5, show_progress=False))


def test_params_configure_monai_parts(spec: DataSpec) -> None:
    stage = DiffusionTranslatorStage({"width": 8, "levels": 3, "attention_levels": 1, "sample_steps": 12}, spec)
    net = stage.build_generator()
    assert isinstance(net, DiffusionModelUNet)
    assert net.in_channels == 1 + len(CLASSES) and net.out_channels == 1  # noisy image + label map concatenated
    assert net.block_out_channels == (8, 16, 32)
    sampler = stage.sampling_scheduler()
    assert isinstance(sampler, DDIMScheduler) and len(sampler.timesteps) == 12
    assert DiffusionLabelGeneratorStage.Params().sample_steps <= 25  # few-step sampling by default


def test_params_refuse_what_cannot_work(spec: DataSpec) -> None:
    with pytest.raises(ValidationError, match="extra"):
        DiffusionLabelGeneratorStage({"widht": 8}, spec)
    with pytest.raises(ValidationError, match="sample_steps"):
        DiffusionLabelGeneratorStage({"num_train_timesteps": 10, "sample_steps": 20}, spec)
    with pytest.raises(ConfigError, match=r"params.size = 20 .* multiple of 8"):
        DiffusionLabelGeneratorStage({"size": 20, "levels": 4}, spec)


def test_label_maps_are_hardened_by_the_gan_helper_and_hook(tmp_path: Path) -> None:
    spec = DataSpec(("vessel", "disc"), "multilabel", 3, SIZE)
    labels = synthetic_multilabel(6)
    seen: list[torch.Tensor] = []

    class Hooked(DiffusionLabelGeneratorStage):
        def postprocess_label(self, label: torch.Tensor) -> torch.Tensor:
            seen.append(label.clone())
            return label

    stage = Hooked(TINY, spec)
    fit(stage, label_pairs(spec, labels), tmp_path, steps=2)
    rng = BatchRNG.for_indices(1, range(4))
    noise = rng.normal(2, SIZE, SIZE)
    out = stage.generate(noise.flatten(1), rng)  # a caller's noise is the initial noise itself
    # hardened, then cleaned of pieces below a tenth of the real maps' smallest (msaug.train.specks), then the hook
    expected = remove_specks(harden_logits(stage.sample(stage.generator, noise, None), "multilabel"),
                             stage.smallest_real_component * SPECK_SHARE, "multilabel")
    assert torch.equal(out, expected) and torch.equal(seen[-1], expected)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    # the same rows from the stage's own draw of each stream
    assert torch.equal(stage.generate(None, BatchRNG.for_indices(1, range(4))), out)


def test_stage_sizes_follow_the_datasets_downsampling_policy() -> None:
    spec = DataSpec(("vessel",), "multilabel", 3, 32, label_downsample="max")
    stage = DiffusionLabelGeneratorStage({"size": 16}, spec)
    assert stage.output.size == 16 and stage.output.downsample == "max"
    assert DiffusionTranslatorStage({"size": 16}, spec).input.downsample == "max"
    assert stage.input == Noise(16 * 16)


def test_translator_resumes_exactly_and_keeps_only_its_own_parts(spec: DataSpec, labels: torch.Tensor, tmp_path: Path) -> None:
    pairs = Pairs(spec.label, spec.image, labels, images_for(labels))
    straight = DiffusionTranslatorStage(TINY, spec)
    fit(straight, pairs, tmp_path / "straight", steps=4)
    fit(DiffusionTranslatorStage(TINY, spec), pairs, tmp_path / "split", steps=2)
    second = DiffusionTranslatorStage(TINY, spec)
    summary = fit(second, pairs, tmp_path / "split", steps=4)
    assert summary["resumed_from"] == 2 and summary["steps"] == 4 and summary["loss"] > 0
    for key, value in straight.trainer.G.state_dict().items():
        assert torch.equal(value, second.trainer.G.state_dict()[key]), key
    found = load_checkpoint(tmp_path / "split" / "checkpoint")
    assert found is not None
    tensors, meta = found
    prefixes = {k.split(".")[0] for k in tensors}
    assert prefixes == {"generator", "ema", "opt_g", "rng"} and meta["step"] == 4
    steps = [json.loads(line)["step"] for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4]
    image = second.generate(labels[:3], BatchRNG.for_indices(0, range(3)))
    assert image.shape == (3, 1, SIZE, SIZE) and 0 <= float(image.min()) and float(image.max()) <= 1


def test_training_memory_grows_with_the_batch(spec: DataSpec) -> None:
    small = DiffusionTranslatorStage({"batch_size": 2}, spec).training_memory()
    large = DiffusionTranslatorStage({"batch_size": 8}, spec).training_memory()
    assert 0 < small < large


def test_diffusion_plugin_registers_both_families(spec: DataSpec) -> None:
    from msaug.builtin.diffusion_stages import msaug_register_stages
    from msaug.plugins import StageRegistry

    registry = StageRegistry()
    msaug_register_stages(register=registry)
    assert registry.names() == ["diffusion.label_generator", "diffusion.translator"]
    label = registry.get("diffusion.label_generator")(None, spec)
    translator = registry.get("diffusion.translator")(None, spec)
    assert (str(label.input), str(label.output)) == (f"Noise({3 * SIZE * SIZE})", "Label(3 classes, 16 px, index)")
    assert (str(translator.input), str(translator.output)) == ("Label(3 classes, 16 px, index)", "Image(1 ch, 16 px)")
    assert all(registry.entry(n).description for n in registry.names())


@pytest.mark.slow  # 2 x 250 training steps: about 15 s on one thread
def test_both_families_learn_the_training_data(spec: DataSpec, labels: torch.Tensor, tmp_path: Path) -> None:
    """Default prediction (v) and DDIM: after a short fit both are much closer to the real data than at initialisation."""
    params = {"width": 8, "levels": 2, "batch_size": 8, "sample_steps": 10, "lr": 1e-3, "ema": 0.99,
              "log_every": 50, "sample_every": 10**6, "checkpoint_every": 10**6}
    images = images_for(labels)
    def rng() -> BatchRNG:
        return BatchRNG.for_indices(0, range(len(labels)))

    translator, generator = DiffusionTranslatorStage(params, spec), DiffusionLabelGeneratorStage(params, spec)

    def errors() -> tuple[float, float]:
        image_error = float((translator.generate(labels, rng()) - images).abs().mean())
        frequencies = generator.generate(None, rng()).mean(dim=(0, 2, 3))
        return image_error, float((frequencies - labels.mean(dim=(0, 2, 3))).abs().sum())

    before = errors()
    fit(translator, Pairs(spec.label, spec.image, labels, images), tmp_path / "t", steps=250)
    fit(generator, label_pairs(spec, labels), tmp_path / "g", steps=250)
    after = errors()
    assert after[0] < 0.5 * before[0], f"translator: mean error to the real images {before[0]:.3f} -> {after[0]:.3f}"
    assert after[1] < 0.1 and after[1] < before[1], f"label generator: class frequency error {before[1]:.3f} -> {after[1]:.3f}"
