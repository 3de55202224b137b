"""``msaug pipeline check`` validates everything a run will need before any training (issue 15, cases 7-10, 19, 20).

Each test feeds the check a value that used to pass it and fail hours later (after the stages
trained), and asserts exit code 2, one message naming the file, line and key, and what
would be valid.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from msaug.cli import cli
from msaug.errors import ConfigError
from msaug.pipeline.runner import prepare
from tests.conftest import CLASSIC, write_folder_dataset

XRAY = Path(__file__).resolve().parents[1] / "pipelines" / "xray.yaml"
#: the chest X-ray pipeline on 4 phantom cases (check renders every case)
XRAY_SMALL = ["--set", "data.count=4"]


def write_pipeline(tmp_path: Path, **changes) -> Path:
    """CLASSIC with top-level keys replaced (``evaluate=...``, ``stages=...``); the folder data at tmp_path/data."""
    if not (tmp_path / "data").exists():
        write_folder_dataset(tmp_path / "data")
    cfg = {**CLASSIC, "profiles": {}, **changes}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def line_of(path: Path, text: str) -> int:
    """1-based line of the first line of ``path`` holding ``text``."""
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def check(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["pipeline", "check", *args])
    assert "Traceback" not in result.output
    return result.exit_code, " ".join(result.output.split())


# --------------------------------------------------------------------------- case 7: the evaluate block
def evaluate_block(**segmenter) -> dict:
    return {"segmenter": {"arch": "unet", "encoder": "tu-resnet10t", "steps": 2, **segmenter}, "protocols": ["real"]}


def test_misspelled_segmenter_arch_fails_the_check(tmp_path):
    path = write_pipeline(tmp_path, evaluate=evaluate_block(arch="unte"))
    code, out = check(str(path))
    assert code == 2
    assert f"{path}:{line_of(path, 'arch: unte')}: evaluate.segmenter.arch: unknown segmenter 'unte'. Did you mean 'unet'?" in out
    assert "Valid names:" in out and "unetplusplus" in out


@pytest.mark.parametrize(("encoder", "hint"), [("tu-resnet10", "'tu-resnet10t'"), ("resnet35", "'resnet34'")])
def test_misspelled_encoder_fails_the_check(tmp_path, encoder, hint):
    path = write_pipeline(tmp_path, evaluate=evaluate_block(encoder=encoder))
    code, out = check(str(path))
    assert code == 2
    assert f"{path}:{line_of(path, f'encoder: {encoder}')}: evaluate.segmenter.encoder: unknown encoder {encoder!r}" in out
    assert "Did you mean" in out and hint in out.split("Did you mean", 1)[1].split("?")[0]
    assert "tu-" in out  # says how timm encoders are named


def test_missing_weights_file_fails_the_check(tmp_path):
    path = write_pipeline(tmp_path, evaluate=evaluate_block(weights="no/such/backbone.safetensors"))
    code, out = check(str(path))
    assert code == 2
    missing = (tmp_path / "no/such/backbone.safetensors").resolve()
    assert f"{path}:{line_of(path, 'weights:')}: evaluate.segmenter.weights: {missing}: weights file not found" in out


def test_weights_of_another_network_fail_the_check(tmp_path):
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, other)
    path = write_pipeline(tmp_path, evaluate=evaluate_block(weights=str(other)))
    code, out = check(str(path))
    assert code == 2
    assert f"evaluate.segmenter.weights: {other}: only 0 of" in out and "tensors match" in out


def test_matching_local_weights_pass_the_check_and_relative_paths_follow_the_yaml(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    from msaug.segment.models import build_segmenter

    source = build_segmenter("unet", 1, 3, encoder="tu-resnet10t")
    (tmp_path / "weights").mkdir()
    save_file({k: v.contiguous() for k, v in source.encoder.model.state_dict().items()}, str(tmp_path / "weights/backbone.safetensors"))
    path = write_pipeline(tmp_path, evaluate=evaluate_block(weights="weights/backbone.safetensors"))
    monkeypatch.chdir(tmp_path.parent)  # relative to the YAML's folder, not the shell's
    code, out = check(str(path))
    assert code == 0, out
    assert prepare(path).config.evaluate.segmenter.weights == (tmp_path / "weights/backbone.safetensors").resolve()


def test_check_builds_no_real_segmenter_for_names(tmp_path, monkeypatch):
    """Names are checked against the registries and the network is laid out on the meta device: no weights allocated."""
    import segmentation_models_pytorch as smp

    devices = []
    real = smp.create_model

    def spy(*args, **kwargs):
        model = real(*args, **kwargs)
        devices.append(next(model.parameters()).device.type)
        return model

    monkeypatch.setattr(smp, "create_model", spy)
    path = write_pipeline(tmp_path, evaluate=evaluate_block())
    code, out = check(str(path))
    assert code == 0, out
    assert devices == ["meta"]


def test_protocols_that_need_synthetic_pairs_fail_the_check_when_none_are_generated(tmp_path):
    block = {**evaluate_block(), "protocols": ["real", "mix"]}
    path = write_pipeline(tmp_path, evaluate=block, generate={"count": 0})
    code, out = check(str(path))
    assert code == 2
    assert f"{path}:{line_of(path, 'protocols:')}: evaluate.protocols: ['mix'] train on synthetic pairs, but generate.count is 0" in out


# --------------------------------------------------------------------------- case 8: an empty test split
def test_single_case_dataset_with_evaluate_names_the_real_reason(tmp_path):
    write_folder_dataset(tmp_path / "data", n=1)
    data = {**CLASSIC["data"], "split": {"train": 0.5, "test": 0.5}}
    path = write_pipeline(tmp_path, data=data, evaluate=evaluate_block())
    code, out = check(str(path))
    assert code == 2
    assert "above 0" not in out  # data.split.test is 0.5 already
    assert "evaluate" in out and "data.split" in out and "only 1 case" in out and "add cases or remove the evaluate block" in out


def test_zero_test_share_with_evaluate_says_to_raise_it(tmp_path):
    data = {**CLASSIC["data"], "split": {"train": 0.75, "test": 0.0}}
    path = write_pipeline(tmp_path, data=data, evaluate=evaluate_block())
    code, out = check(str(path))
    assert code == 2 and "data.split.test is 0: set it above 0" in out


# --------------------------------------------------------------------------- case 9: sizes the stages cannot work at
def test_discriminator_scales_too_many_for_the_size_fail_the_check():
    code, out = check(str(XRAY), *XRAY_SMALL, "--set", "data.size=32", "--set", "stages.anatomy_mask.params.size=16",
                      "--set", "stages.mask_upscale.params.in_size=16", "--set", "stages.mask_upscale.params.scales=4")
    assert code == 2
    assert f"{XRAY}:{line_of(XRAY, 'use: xray.mask_upscale')}: stages[1] (xray.mask_upscale): params.scales = 4:" in out
    assert "halves the 32 px inputs 3 times, to 4 px, below the 8 px" in out and "use scales: 3 or fewer" in out
    assert "RuntimeError" not in out and "internal error" not in out


def test_data_size_12_with_stage_sizes_8_fails_the_check():
    code, out = check(str(XRAY), *XRAY_SMALL, "--set", "data.size=12", "--set", "stages.anatomy_mask.params.size=8",
                      "--set", "stages.mask_upscale.params.in_size=8")
    assert code == 2
    assert "stages[1] (xray.mask_upscale): params.scales = 2:" in out and "12 px" in out and "use scales: 1" in out
    assert "at least 15 px" in out


def test_size_errors_name_the_pipeline_stage_not_the_family():
    code, out = check(str(XRAY), *XRAY_SMALL, "--set", "stages.mask_upscale.params.in_size=128")
    assert code == 2
    assert f"{XRAY}:{line_of(XRAY, 'use: xray.mask_upscale')}: stages[1] (xray.mask_upscale): out_size (128) must be larger than in_size (128)" in out
    assert "gan.label_upscaler" not in out


@pytest.mark.parametrize("use", ["gan.translator", "gan.label_upscaler"])
@pytest.mark.parametrize("size", [12, 14, 15, 16, 28, 29, 56, 57])
@pytest.mark.parametrize("scales", [1, 2, 3, 4])
def test_size_rule_agrees_with_the_networks(use, size, scales):
    """The declared rule refuses exactly the sizes at which the discriminator cannot run (checked by running it)."""
    from msaug.plugins import get_registries
    from msaug.sample import DataSpec

    cls = get_registries().stages.get(use)
    params = cls.Params(scales=scales, width=4, **({"in_size": 4} if use == "gan.label_upscaler" else {}))
    spec = DataSpec(("background", "disc"), "index", 1, size)
    try:
        cls(params, spec)
        refused = False
    except ConfigError as exc:
        refused = True
        assert f"params.scales = {scales}" in str(exc)
    from msaug.nn.discriminators import MultiScalePatchDiscriminator

    disc = MultiScalePatchDiscriminator(4, 4, scales)
    try:
        disc(torch.zeros(1, 4, size, size))
        runs = True
    except RuntimeError:
        runs = False
    assert refused == (not runs)


def test_any_network_failure_at_the_sizes_is_a_config_error_naming_the_stage(tmp_path, monkeypatch):
    """The dry run on the meta device catches what no declared rule covers, as a user error naming the stage."""
    from msaug.nn import generators

    def broken_forward(self, label, noise):
        raise RuntimeError("Kernel size can't be greater than actual input size")

    monkeypatch.setattr(generators.LabelUpscalerNet, "forward", broken_forward)
    stages = [{"use": "core.real_labels", "params": {"size": 16}}, {"use": "gan.label_upscaler", "params": {"in_size": 16}, "budget": {"steps": 1}},
              {"use": "core.lab2im"}]
    path = write_pipeline(tmp_path, stages=stages)
    code, out = check(str(path))
    assert code == 2
    assert f"{path}:{line_of(path, 'use: gan.label_upscaler')}: stages[1] (gan.label_upscaler): its networks cannot run at" in out
    assert "Kernel size can't be greater" in out


# --------------------------------------------------------------------------- case 10: sizes that cannot fit in memory
def test_huge_data_size_is_refused_in_seconds_with_the_memory_it_needs():
    import time

    start = time.process_time()  # CPU time of this process (the CLI runs in it): the machine may be busy
    code, out = check(str(XRAY), "--set", "data.size=8192", "--set", "data.count=2")
    assert code == 2
    assert "stages[0] (xray.anatomy_mask)" not in out  # 32 px: fits
    assert "to train at 8192 px with batch_size 8" in out and "GB" in out and "memory" in out
    assert "lower data.size" in out
    assert time.process_time() - start < 30  # no phantom case was rendered at 8192 px (minutes, 8 GB each)


def test_memory_rule_uses_the_machine_memory(tmp_path, monkeypatch):
    from msaug.pipeline import validate

    stages = [{"use": "core.real_labels", "params": {"size": 16}}, {"use": "gan.label_upscaler", "params": {"in_size": 16}, "budget": {"steps": 1}},
              {"use": "core.lab2im"}]
    path = write_pipeline(tmp_path, stages=stages)
    monkeypatch.setattr(validate, "available_memory", lambda: (1 << 20, "RAM"))  # 1 MiB
    code, out = check(str(path))
    assert code == 2
    assert f"{path}:{line_of(path, 'use: gan.label_upscaler')}: stages[1] (gan.label_upscaler): needs at least" in out
    assert "more than the 1 MB of RAM this machine has" in out
    monkeypatch.setattr(validate, "available_memory", lambda: (64 << 30, "RAM"))
    code, out = check(str(path))
    assert code == 0, out
    assert "2. gan.label_upscaler" in out and "(budget 1 steps, training memory at least" in out


def test_generating_from_a_finished_run_skips_what_only_training_needs(tmp_path, monkeypatch):
    """msaug generate (prepare with training=False) may run on a smaller machine, after the evaluate block's files moved."""
    from msaug.pipeline import validate

    stages = [{"use": "core.real_labels", "params": {"size": 16}}, {"use": "gan.label_upscaler", "params": {"in_size": 16}, "budget": {"steps": 1}},
              {"use": "core.lab2im"}]
    path = write_pipeline(tmp_path, stages=stages, evaluate=evaluate_block(weights=str(tmp_path / "moved.safetensors")))
    monkeypatch.setattr(validate, "available_memory", lambda: (1 << 20, "RAM"))
    with pytest.raises(ConfigError, match="needs at least"):
        prepare(path)
    prepared = prepare(path, training=False)
    assert prepared.chain.stages[1].memory is not None and prepared.chain.stages[1].memory > 1 << 20


# --------------------------------------------------------------------------- case 19: line numbers inside profiles
def test_errors_in_profiles_name_the_profile_line(tmp_path):
    path = write_pipeline(tmp_path, profiles={"quick": {"generate.count": 6, "data.size": 100000}})
    code, out = check(str(path), "--profile", "quick")
    assert code == 2
    assert f"{path}:{line_of(path, 'data.size: 100000')}: data.size (set by profile 'quick'): Input should be less than or equal to 8192" in out


def test_unknown_stage_in_a_profile_key_names_the_profile_line(tmp_path):
    path = write_pipeline(tmp_path, profiles={"quick": {"stages.bogus.params.size": 8}})
    code, out = check(str(path), "--profile", "quick")
    assert code == 2
    assert f"{path}:{line_of(path, 'stages.bogus.params.size')}: profile 'quick': stages.bogus.params.size: no stage named 'bogus'" in out


def test_nested_profile_maps_name_the_line_of_the_value(tmp_path):
    path = write_pipeline(tmp_path, profiles={"quick": {"stages.real_labels.params": {"rotation": 8.0, "size": 2}}})
    code, out = check(str(path), "--profile", "quick")
    assert code == 2
    assert f"{path}:{line_of(path, 'size: 2')}: stages[0].params.size (set by profile 'quick')" in out


# --------------------------------------------------------------------------- case 20: budgets
def gan_stages(budget: dict | None) -> list[dict]:
    upscaler = {"use": "gan.label_upscaler", "params": {"in_size": 16}}
    if budget is not None:
        upscaler["budget"] = budget
    return [{"use": "core.real_labels", "params": {"size": 16}}, upscaler, {"use": "core.lab2im"}]


def test_zero_step_budget_of_a_trainable_stage_fails_the_check(tmp_path):
    path = write_pipeline(tmp_path, stages=gan_stages({"steps": 0}))
    code, out = check(str(path))
    assert code == 2
    assert f"{path}:{line_of(path, 'steps: 0')}: stages[1].budget.steps (gan.label_upscaler): 0 steps would leave the stage untrained" in out


def test_trainable_stage_without_a_budget_fails_the_check(tmp_path):
    path = write_pipeline(tmp_path, stages=gan_stages(None))
    code, out = check(str(path))
    assert code == 2
    assert f"{path}:{line_of(path, 'use: gan.label_upscaler')}: stages[1] (gan.label_upscaler): a trainable stage needs a budget" in out


def test_stages_that_do_not_train_may_have_any_budget(tmp_path):
    stages = [{"use": "core.real_labels", "params": {"size": 16}, "budget": {"steps": 0}}, {"use": "core.label_resize", "params": {"in_size": 16}},
              {"use": "core.lab2im"}]
    code, out = check(str(write_pipeline(tmp_path, stages=stages)))
    assert code == 0, out


def test_inception_weights_are_checked_before_training(tmp_path):
    path = write_pipeline(tmp_path, evaluate={**evaluate_block(), "inception_weights": "no/such/inception.pth"})
    code, out = check(str(path))
    assert code == 2
    missing = (tmp_path / "no/such/inception.pth").resolve()
    assert f"{path}:{line_of(path, 'inception_weights:')}: evaluate.inception_weights: {missing}: Inception weights file not found" in out
    torch.save({"fc.weight": torch.zeros(10, 2048)}, tmp_path / "odd.pth")
    path = write_pipeline(tmp_path, evaluate={**evaluate_block(), "inception_weights": "odd.pth"})
    code, out = check(str(path))
    assert code == 2 and "evaluate.inception_weights: " in out and "with 10 logits; expected the FID reference network" in " ".join(out.split())
