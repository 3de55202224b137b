"""Segmenter registry, local weights loading without network, checkpoints."""

from __future__ import annotations

import socket

import pytest
import torch

from msaug import CheckpointError, ConfigError, DataSpec, UnknownNameError
from msaug.plugins import load_registries
from msaug.segment.models import architectures, build_segmenter, load_local_weights
from msaug.segment.segmenter import Segmenter, SegmenterInfo

ENCODER = "tu-resnet10t"


def test_every_smp_architecture_is_registered():
    registered = load_registries(load_entry_points=False).segmenters
    assert set(architectures()) <= set(registered.names())
    assert {"unet", "unetplusplus", "fpn", "deeplabv3plus", "segformer"} <= set(registered.names())


def test_unknown_architecture_lists_valid_names():
    with pytest.raises(UnknownNameError, match="'unetplus'.*Did you mean 'unetplusplus'.*Valid names: deeplabv3, "):
        build_segmenter("unetplus", 1, 2, encoder=ENCODER)


def test_unknown_encoder_is_a_config_error():
    with pytest.raises(ConfigError, match="tu-no_such_net"):
        build_segmenter("unet", 1, 2, encoder="tu-no_such_net")


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_backbone_weights_load_without_network(tmp_path, no_network, suffix):
    source = build_segmenter("unet", 1, 3, encoder=ENCODER)
    backbone = {k: v.clone() for k, v in source.encoder.model.state_dict().items()}  # a plain timm backbone file
    path = tmp_path / f"backbone{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in backbone.items()}, str(path))
    else:
        torch.save(backbone, path)
    model = build_segmenter("unet", 1, 3, encoder=ENCODER, weights=path)
    for key, value in backbone.items():
        assert torch.equal(model.encoder.model.state_dict()[key], value), key
    fresh = build_segmenter("unet", 1, 3, encoder=ENCODER)
    assert not torch.equal(fresh.encoder.model.conv1[0].weight, model.encoder.model.conv1[0].weight)


def test_weights_for_another_network_are_rejected(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, path)
    model = build_segmenter("unet", 1, 2, encoder=ENCODER)
    with pytest.raises(CheckpointError, match="only 0 of .* tensors match"):
        load_local_weights(model, path)
    with pytest.raises(CheckpointError, match="not found"):
        load_local_weights(model, tmp_path / "missing.pth")


def test_checkpoint_round_trip_gives_identical_predictions(tmp_path):
    spec = DataSpec(("lung", "clavicle"), "multilabel", 1, 32)
    segmenter = Segmenter(SegmenterInfo.for_spec(spec, "fpn", ENCODER, 32))
    images = torch.rand(2, 1, 48, 48)
    before = segmenter.logits(images)
    segmenter.save(tmp_path / "ckpt")
    restored = Segmenter.load(tmp_path / "ckpt")
    assert restored.info == segmenter.info
    assert before.shape == (2, 2, 48, 48)  # predicted at the input's own size
    assert torch.allclose(restored.logits(images), before)
    probs, hard = restored.predict(images)
    assert ((probs >= 0) & (probs <= 1)).all() and set(hard.unique().tolist()) <= {0.0, 1.0}


def test_corrupt_checkpoint_is_a_checkpoint_error(tmp_path):
    spec = DataSpec(("background", "vessel"), "index", 3, 32)
    Segmenter(SegmenterInfo.for_spec(spec, "unet", ENCODER, 32)).save(tmp_path)
    (tmp_path / "segmenter.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="segmenter.safetensors"):
        Segmenter.load(tmp_path)


def test_building_a_segmenter_prints_no_deprecation_notice_of_its_dependencies() -> None:
    """timm's import under torch 2.14 warns that ``torch.jit.interface`` is deprecated; msaug hides that one notice."""
    import subprocess
    import sys

    code = "from msaug.segment.models import build_segmenter; build_segmenter('unet', 1, 2); print('built')"
    done = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "built"
    assert "torch.jit.interface" not in done.stderr
