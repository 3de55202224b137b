"""The public Python API: a synthetic set as a torch dataset with collate, and run_pipeline."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch.utils.data import DataLoader

import msaug
from msaug import DataError, Sample
from msaug.cli import cli
from msaug.synthetic import SyntheticWriter
from tests.segment.conftest import make_pairs


def write_set(root: Path, pairs, bit_depth: int = 16) -> Path:
    """``pairs`` written as msaug's generator writes a synthetic set."""
    writer = SyntheticWriter(root, pairs.spec, bit_depth=bit_depth)
    entries = {i: writer.write_pair(i, torch.as_tensor(pairs[i].image), torch.as_tensor(pairs[i].label), seed=i, extra={"stages": {}})
               for i in range(len(pairs))}
    writer.finalize(entries)
    return root


def test_public_api_names_the_dataset_collate_and_runner():
    for name in ("SyntheticDataset", "collate_samples", "run_pipeline"):
        assert name in msaug.__all__ and getattr(msaug, name) is not None
    assert issubclass(msaug.SyntheticDataset, torch.utils.data.Dataset)


def test_a_dataloader_batches_a_multilabel_16_bit_set(tmp_path):
    pairs = make_pairs(5, 32, "multilabel")
    ds = msaug.SyntheticDataset(write_set(tmp_path / "synthetic", pairs))
    assert isinstance(ds, msaug.Dataset) and ds.ids == [f"synthetic-{i:06d}" for i in range(5)]
    batches = list(DataLoader(ds, batch_size=3, collate_fn=msaug.collate_samples))
    assert [b["image"].shape for b in batches] == [torch.Size([3, 1, 32, 32]), torch.Size([2, 1, 32, 32])]
    first = batches[0]
    assert first["image"].dtype == torch.float32 and first["label"].dtype == torch.float32 and first["roi"].dtype == torch.bool
    assert first["label"].shape == (3, 2, 32, 32) and first["roi"].shape == (3, 32, 32) and bool(first["roi"].all())
    assert first["id"] == ["synthetic-000000", "synthetic-000001", "synthetic-000002"]
    assert [m["seed"] for m in first["meta"]] == [0, 1, 2]
    labels = torch.cat([b["label"] for b in batches])
    images = torch.cat([b["image"] for b in batches])
    expected = np.stack([pairs[i].label for i in range(5)])
    assert np.array_equal(labels.numpy(), expected)  # overlaps (disc and bar) kept, exactly
    assert ((labels[:, 0] > 0) & (labels[:, 1] > 0)).any()
    # 16-bit PNGs: within half a grey level of 65535 of what was written
    assert np.abs(images.numpy() - np.stack([pairs[i].image for i in range(5)])).max() <= 0.5 / 65535 + 1e-7
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0


def test_index_sets_collate_to_one_hot_channels_and_a_run_folder_is_accepted(tmp_path):
    pairs = make_pairs(4, 24, "index", channels=3)
    write_set(tmp_path / "run" / "synthetic", pairs, bit_depth=8)
    ds = msaug.SyntheticDataset(tmp_path / "run")  # the run folder, not its synthetic/
    assert ds.root == tmp_path / "run" / "synthetic" and ds.spec.classes == ("background", "disc")
    batch = next(iter(DataLoader(ds, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0), collate_fn=msaug.collate_samples)))
    assert batch["image"].shape == (4, 3, 24, 24) and batch["label"].shape == (4, 2, 24, 24)
    assert torch.equal(batch["label"].sum(dim=1), torch.ones(4, 24, 24))
    for b, sample_id in enumerate(batch["id"]):
        i = int(sample_id.rsplit("-", 1)[1])
        assert np.array_equal(batch["label"][b].numpy(), pairs[i].label)
    restored = pickle.loads(pickle.dumps(ds))  # DataLoader workers receive the dataset pickled
    assert np.array_equal(restored[2].label, ds[2].label)


def test_collate_keeps_regions_of_interest(tmp_path):
    pairs = make_pairs(3, 32, "index", roi=True)
    batch = msaug.collate_samples([pairs[i] for i in range(3)])
    assert batch["roi"].dtype == torch.bool
    assert np.array_equal(batch["roi"].numpy(), np.stack([pairs[i].roi for i in range(3)]))
    mixed = msaug.collate_samples([pairs[0], Sample("no-roi", pairs[1].image, pairs[1].label)])
    assert bool(mixed["roi"][1].all()) and not bool(mixed["roi"][0].all())


def test_collate_names_the_samples_that_do_not_fit(tmp_path):
    small, large = make_pairs(1, 24)[0], make_pairs(1, 32)[0]
    with pytest.raises(DataError, match=r"collate_samples: sample 'toy-0-000' has label shape \(2, 32, 32\), sample 'toy-0-000' \(2, 24, 24\)"):
        msaug.collate_samples([small, large])
    with pytest.raises(DataError, match="sample 'labels-only' has no image"):
        msaug.collate_samples([Sample("labels-only", None, small.label)])
    with pytest.raises(DataError, match="empty batch"):
        msaug.collate_samples([])
    with pytest.raises(DataError, match=r"no dataset.json; not a synthetic dataset folder"):
        msaug.SyntheticDataset(tmp_path)


def test_run_pipeline_passes_the_cli_options_to_the_same_runner(monkeypatch, tmp_path):
    import msaug.pipeline.runner as runner

    seen = []
    monkeypatch.setattr(runner, "run_pipeline", lambda path, options, console=None: seen.append((Path(path), options)) or {"ok": 1})
    args = ["pipeline", "run", "p.yaml", "--out", str(tmp_path / "o"), "--profile", "quick", "--set", "generate.count=4",
            "--set", "data.size=24", "--seed", "3", "--device", "cpu", "--no-evaluate", "--quiet"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    report = msaug.run_pipeline("p.yaml", out=tmp_path / "o", profile="quick", sets=["generate.count=4", "data.size=24"],
                                seed=3, device="cpu", evaluate=False, progress=False)
    assert report == {"ok": 1}
    (cli_path, cli_options), (api_path, api_options) = seen
    assert api_path == cli_path and api_options == cli_options
    assert api_options.out == tmp_path / "o" and api_options.sets == ("generate.count=4", "data.size=24")


def test_run_pipeline_takes_overrides_as_python_values(monkeypatch, classic_yaml, tmp_path):
    import msaug.pipeline.runner as runner

    with pytest.raises(msaug.ConfigError, match=r"data\.sise"):  # checked before any work, the key named
        msaug.run_pipeline(classic_yaml, out=tmp_path / "bad", overrides={"data.sise": 64}, progress=False)
    assert not (tmp_path / "bad").exists()
    seen = []
    monkeypatch.setattr(runner, "run_pipeline", lambda path, options, console=None: seen.append(options) or {})
    msaug.run_pipeline(classic_yaml, overrides={"data.size": 32, "generate.count": 4})
    assert seen[0].overrides == {"data.size": 32, "generate.count": 4}


def test_run_pipeline_raises_the_cli_message(tmp_path):
    missing = tmp_path / "nope.yaml"
    result = CliRunner().invoke(cli, ["pipeline", "run", str(missing), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    with pytest.raises(msaug.MsaugError) as raised:
        msaug.run_pipeline(missing, out=tmp_path / "o")
    assert str(raised.value) in result.output.replace("\n", "")
    with pytest.raises(msaug.ConfigError, match="resume=True and overwrite=True exclude each other"):
        msaug.run_pipeline(missing, resume=True, overwrite=True)


@pytest.mark.slow
def test_run_pipeline_writes_a_run_that_loads_as_a_dataset(classic_yaml, tmp_path):
    report = msaug.run_pipeline(classic_yaml, out=tmp_path / "run", profile="quick", sets=["generate.count=4"], evaluate=False, progress=False)
    assert report["generate"]["count"] == 4
    batch = next(iter(DataLoader(msaug.SyntheticDataset(tmp_path / "run", verify=True), batch_size=4, collate_fn=msaug.collate_samples)))
    assert batch["image"].shape == (4, 1, 32, 32) and batch["label"].shape == (4, 3, 32, 32)
    assert torch.equal(batch["label"].sum(dim=1), torch.ones(4, 32, 32))


def doc_examples(section: str) -> list[str]:
    text = (Path(__file__).resolve().parents[1] / "docs/segmentation.md").read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.+?)\n```", body, flags=re.S)


def test_the_documented_dataloader_example_runs(tmp_path, monkeypatch, capsys):
    write_set(tmp_path / "runs/demo/synthetic", make_pairs(5, 32, "multilabel"))
    monkeypatch.chdir(tmp_path)
    exec(doc_examples("Interoperability: synthetic sets in your own PyTorch code")[0], {})
    assert capsys.readouterr().out.strip() == "('disc', 'bar') multilabel torch.Size([4, 1, 32, 32]) torch.Size([4, 2, 32, 32])"
