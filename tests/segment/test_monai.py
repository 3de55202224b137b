"""msaug export monai read by the real MONAI: datalist, LoadImaged, msaug.monai's decoder, DataLoader."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset, load_decathlon_datalist
from monai.transforms import AsDiscreted, Compose, LoadImaged, ScaleIntensityRanged

from msaug import DataError
from msaug.monai import DecodeLabels, DecodeLabelsd, datalist_transforms
from msaug.segment.export import export_monai
from msaug.synthetic import SyntheticDataset
from tests.test_python_api import doc_examples, write_set


def export(tmp_path, pairs, bit_depth):
    synth = write_set(tmp_path / "synthetic", pairs, bit_depth=bit_depth)
    return SyntheticDataset(synth), export_monai(synth, tmp_path / "lists" / "datalist.json")


def test_a_16_bit_multilabel_export_loads_decodes_and_scales_in_monai(tmp_path, toy):
    msaug_set, path = export(tmp_path, toy(5, 32, "multilabel"), 16)
    datalist = json.loads(path.read_text())
    assert datalist["classes"] == ["disc", "bar"] and datalist["encoding"] == "multilabel"
    assert datalist["labels"] == {"1": "disc", "2": "bar"} and datalist["label_format"] == "bit mask per pixel, bit k = channel k"
    assert datalist["bit_depth"] == 16 and datalist["intensity_range"] == [0, 65535] and datalist["channels"] == 1
    files = load_decathlon_datalist(str(path), data_list_key="training")
    batches = list(DataLoader(Dataset(files, datalist_transforms(path)), batch_size=2))
    assert [tuple(b["image"].shape) for b in batches] == [(2, 1, 32, 32), (2, 1, 32, 32), (1, 1, 32, 32)]
    images, labels = torch.cat([b["image"] for b in batches]), torch.cat([b["label"] for b in batches])
    assert images.dtype == torch.float32 and labels.dtype == torch.float32 and labels.shape == (5, 2, 32, 32)
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0 and float(images.max()) > 0.5  # scaled, not 0-65535
    expected = [msaug_set[i] for i in range(5)]
    assert np.array_equal(labels.numpy(), np.stack([s.label for s in expected]))  # exactly msaug's channels, overlaps kept
    assert ((labels[:, 0] > 0) & (labels[:, 1] > 0)).any()
    np.testing.assert_allclose(images.numpy(), np.stack([s.image for s in expected]), atol=1e-6)


def test_the_decoder_composes_with_monai_defaults_and_a_torch_dataloader(tmp_path, toy):
    """Plain LoadImaged (x-first arrays) + ScaleIntensityRanged from the datalist's range + DecodeLabelsd."""
    msaug_set, path = export(tmp_path, toy(3, 24, "multilabel"), 16)
    datalist = json.loads(path.read_text())
    low, high = datalist["intensity_range"]
    chain = Compose([
        LoadImaged(keys=["image", "label"], ensure_channel_first=True),
        ScaleIntensityRanged(keys="image", a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True),
        DecodeLabelsd(keys="label", classes=datalist["classes"], encoding=datalist["encoding"]),
    ])
    files = load_decathlon_datalist(str(path), data_list_key="training")
    batch = next(iter(torch.utils.data.DataLoader(Dataset(files, chain), batch_size=3)))
    # MONAI's PIL reader puts x first: [.., W, H]
    assert np.array_equal(batch["label"].numpy(), np.stack([msaug_set[i].label for i in range(3)]).transpose(0, 1, 3, 2))
    np.testing.assert_allclose(batch["image"].numpy(), np.stack([msaug_set[i].image for i in range(3)]).transpose(0, 1, 3, 2), atol=1e-6)


def test_an_8_bit_rgb_index_export_decodes_like_monai_one_hot(tmp_path, toy):
    msaug_set, path = export(tmp_path, toy(3, 24, "index", channels=3), 8)
    datalist = json.loads(path.read_text())
    assert datalist["bit_depth"] == 8 and datalist["intensity_range"] == [0, 255] and datalist["classes"] == ["background", "disc"]
    files = load_decathlon_datalist(str(path), data_list_key="training")
    item = datalist_transforms(path)(files[1])
    assert tuple(item["image"].shape) == (3, 24, 24) and tuple(item["label"].shape) == (2, 24, 24)
    assert np.array_equal(item["label"].numpy(), msaug_set[1].label)
    np.testing.assert_allclose(item["image"].numpy(), msaug_set[1].image, atol=1e-6)
    raw = LoadImaged(keys="label", reader="PILReader", reverse_indexing=False, ensure_channel_first=True)(files[1])
    monai_one_hot = AsDiscreted(keys="label", to_onehot=2)(dict(raw))["label"]
    assert torch.equal(torch.as_tensor(DecodeLabelsd(classes=2, encoding="index")(raw)["label"]), torch.as_tensor(monai_one_hot))


def test_decoding_refuses_what_is_not_an_msaug_label_map(tmp_path, toy):
    decode = DecodeLabels(["disc", "bar"], "multilabel")
    assert decode(np.array([[[0, 1], [2, 3]]])).tolist() == [[[0, 1], [0, 1]], [[0, 0], [1, 1]]]
    with pytest.raises(DataError, match=r"label value 4 is outside the declared classes; valid values: bit masks 0..3 \(2 channels\)"):
        decode(np.array([[[0, 4]]]))
    with pytest.raises(DataError, match="not whole numbers; .*mode='nearest'"):
        decode(torch.tensor([[[0.0, 1.5]]]))
    with pytest.raises(DataError, match=r"expected one label map \[1, H, W\] or \[H, W\], got shape \(2, 2, 2\)"):
        decode(np.zeros((2, 2, 2)))
    with pytest.raises(DataError, match="unknown encoding 'onehot'; valid: index, multilabel"):
        DecodeLabels(2, "onehot")
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"training": [], "encoding": "index"}))
    with pytest.raises(DataError, match=f"{old}: no 'classes', 'intensity_range'; re-export it with msaug export monai"):
        datalist_transforms(old)


def test_the_documented_monai_examples_run(tmp_path, toy, monkeypatch, capsys):
    synth = write_set(tmp_path / "synthetic", toy(5, 32, "multilabel"), bit_depth=16)
    export_monai(synth, tmp_path / "datalist.json")
    monkeypatch.chdir(tmp_path)
    loading, own_chain = doc_examples("Interoperability: MONAI")
    exec(loading, {})
    assert capsys.readouterr().out.strip() == "(4, 1, 32, 32) (4, 2, 32, 32) True"
    namespace: dict = {}
    exec(own_chain, namespace)
    item = namespace["train_transforms"](load_decathlon_datalist("datalist.json", data_list_key="training")[0])
    assert tuple(item["label"].shape) == (2, 32, 32) and set(torch.unique(torch.as_tensor(item["label"])).tolist()) == {0.0, 1.0}
