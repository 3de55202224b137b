"""The synthetic dataset on disk: PNG pairs, a manifest and a dataset description.

Layout (inside a run directory, ``synthetic/``)::

    dataset.json        classes, encoding, channels, size, domain, label downsampling, bit depth
    images/000000.png   8- or 16-bit grey, or 8-bit RGB
    labels/000000.png   index encoding: uint8 class index; multilabel: bit mask (bit k = channel k)
    manifest.jsonl      one JSON object per pair: index, seed, image, label, sha256, stages

Pairs are written atomically one by one; the manifest is appended after each batch (so a
killed run keeps every finished pair) and rewritten in index order at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from msaug.errors import DataError
from msaug.label_encoding import file_format, from_file, to_file
from msaug.io import append_lines, atomic_open, image_to_array, png_bytes, read_image, read_json, read_label_array, sha256_file, write_json
from msaug.sample import DataSpec, Sample

MANIFEST = "manifest.jsonl"
SHARD_MANIFESTS = "manifest.shard-*-of-*.jsonl"
DESCRIPTION = "dataset.json"


def pair_name(index: int) -> str:
    return f"{index:06d}.png"


class SyntheticWriter:
    """Writes generated pairs into a synthetic dataset folder."""

    def __init__(self, root: Path, spec: DataSpec, bit_depth: int | None = None):
        self.root = Path(root)
        self.spec = spec
        self.bit_depth = bit_depth or (16 if spec.channels == 1 else 8)
        (self.root / "images").mkdir(parents=True, exist_ok=True)
        (self.root / "labels").mkdir(parents=True, exist_ok=True)
        self.description: dict[str, Any] = {
            "classes": list(spec.classes),
            "encoding": spec.encoding,
            "channels": spec.channels,
            "size": spec.size,
            "domain": spec.domain,
            "label_downsample": spec.label_downsample,
            "bit_depth": self.bit_depth,
            "label_format": file_format(spec.encoding),
        }
        if spec.patches:  # written only when set, so folders of whole-image pairs keep their description
            self.description["patches"] = True
        #: the description already on disk (``None`` when there is none): the pairs there were written
        #: in its format, which a caller compares before adding pairs; a new folder gets this writer's
        self.found_description = read_description(self.root)
        if self.found_description is None:
            self.write_description()

    def write_description(self) -> None:
        write_json(self.root / DESCRIPTION, self.description)
        self.found_description = dict(self.description)

    def existing(self) -> dict[int, dict[str, Any]]:
        """Entries already written, from the manifest and any shard manifests, whose files exist.

        A line cut short by a kill is dropped (its pair is regenerated).
        """
        found: dict[int, dict[str, Any]] = {}
        for path in [self.root / MANIFEST, *sorted(self.root.glob(SHARD_MANIFESTS))]:
            for e in read_manifest(self.root, strict=False, name=path.name):
                if self._files_exist(e):
                    found[e["index"]] = e
        return found

    def _files_exist(self, entry: dict[str, Any]) -> bool:
        return (self.root / entry["image"]).is_file() and (self.root / entry["label"]).is_file()

    def write_pair(self, index: int, image: torch.Tensor, label: torch.Tensor, seed: int, extra: dict[str, Any]) -> dict[str, Any]:
        name = pair_name(index)
        image_path, label_path = self.root / "images" / name, self.root / "labels" / name
        image_png = png_bytes(image_to_array(image.float().cpu().numpy(), self.bit_depth))
        label_png = png_bytes(to_file(label.cpu(), self.spec.encoding))
        # no fsync per file (two per pair cost about a millisecond): the manifest line, which is
        # synced, holds both files' sha256, and every resume (drop_damaged_pairs) and msaug data
        # verify check them, so a pair a power loss emptied is found and generated again
        for path, data in ((image_path, image_png), (label_path, label_png)):
            with atomic_open(path, sync=False) as fh:
                fh.write(data)
        return {
            "index": index,
            "seed": seed,
            "image": f"images/{name}",
            "label": f"labels/{name}",
            "sha256": {"image": hashlib.sha256(image_png).hexdigest(), "label": hashlib.sha256(label_png).hexdigest()},
            **extra,
        }

    def repair(self, name: str = MANIFEST) -> None:
        """Drop a line cut short by a kill from a manifest before appending to it again."""
        path = self.root / name
        if path.is_file():
            entries = read_manifest(self.root, strict=False, name=name)
            with atomic_open(path, "w") as fh:
                for entry in entries:
                    fh.write(json.dumps(entry, sort_keys=True) + "\n")

    def append_manifest(self, entries: Iterable[dict[str, Any]], name: str = MANIFEST) -> None:
        append_lines(self.root / name, [json.dumps(entry, sort_keys=True) + "\n" for entry in entries], sync=True)

    def finalize(self, entries: dict[int, dict[str, Any]]) -> None:
        """Rewrite the manifest in index order (atomically) and drop merged shard manifests."""
        with atomic_open(self.root / MANIFEST, "w") as fh:
            for index in sorted(entries):
                fh.write(json.dumps(entries[index], sort_keys=True) + "\n")
        for part in self.root.glob(SHARD_MANIFESTS):
            part.unlink(missing_ok=True)


def read_description(root: Path) -> dict[str, Any] | None:
    """``root/dataset.json`` as a dict, or ``None`` when it is missing or not a JSON object."""
    try:
        found = json.loads((Path(root) / DESCRIPTION).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return found if isinstance(found, dict) else None


def shard_manifest(shard: int, shards: int) -> str:
    return f"manifest.shard-{shard}-of-{shards}.jsonl"


def read_manifest(root: Path, strict: bool = True, name: str = MANIFEST) -> list[dict[str, Any]]:
    path = Path(root) / name
    if not path.is_file():
        if strict:
            raise DataError(f"{path}: manifest not found; is {root} a synthetic dataset folder?")
        return []
    entries: list[dict[str, Any]] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            entry["index"], entry["image"], entry["label"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            if not strict and number == len(lines):
                break  # a line cut short by a kill; the pair is regenerated
            raise DataError(f"{path}:{number}: not a valid manifest line ({exc})") from None
        entries.append(entry)
    return entries


class SyntheticDataset(torch.utils.data.Dataset):
    """A synthetic dataset folder as a :class:`msaug.Dataset` and a ``torch.utils.data.Dataset``.

    ``root`` is the folder ``msaug pipeline run`` / ``msaug generate`` wrote (``RUN/synthetic``,
    or a ``generate --out`` folder); a run folder holding ``synthetic/`` is accepted too.
    ``dataset[i]`` is a :class:`msaug.Sample` (``image`` float32 ``[C, H, W]`` in [0, 1],
    ``label`` float32 ``[K, H, W]`` 0/1 channels, ``meta`` its manifest line); batch them
    with ``DataLoader(dataset, batch_size=..., collate_fn=msaug.collate_samples)``.
    ``verify=True`` checks every file's sha256 against the manifest first.
    """

    def __init__(self, root: str | os.PathLike[str], verify: bool = False):
        self.root = Path(root)
        if not (self.root / DESCRIPTION).is_file() and (self.root / "synthetic" / DESCRIPTION).is_file():
            self.root = self.root / "synthetic"  # a run folder
        if not (self.root / DESCRIPTION).is_file():
            raise DataError(f"{self.root}: no {DESCRIPTION}; not a synthetic dataset folder written by msaug")
        d = read_json(self.root / DESCRIPTION)
        try:
            self.spec = DataSpec(
                tuple(d["classes"]), d["encoding"], int(d["channels"]), int(d["size"]), d.get("domain", "generic"),
                label_downsample=d.get("label_downsample", "area"), patches=bool(d.get("patches", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{self.root / DESCRIPTION}: missing or invalid field ({exc})") from None
        self.entries = sorted(read_manifest(self.root), key=lambda e: e["index"])
        if verify:
            self.verify()

    def verify(self) -> list[str]:
        """Check every file against its manifest sha256; raise DataError listing mismatches."""
        bad = []
        for e in self.entries:
            for key in ("image", "label"):
                path = self.root / e[key]
                if not path.is_file():
                    bad.append(f"{e[key]} (missing)")
                elif sha256_file(path) != e.get("sha256", {}).get(key):
                    bad.append(f"{e[key]} (sha256 mismatch)")
        if bad:
            raise DataError(f"{self.root}: {len(bad)} file(s) fail verification: {', '.join(bad[:10])}")
        return bad

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def ids(self) -> list[str]:
        """Every pair's sample id (``synthetic-NNNNNN``, its manifest index), without reading files."""
        return [f"synthetic-{e['index']:06d}" for e in self.entries]

    def __getitem__(self, index: int) -> Sample:
        e = self.entries[index]
        image = read_image(self.root / e["image"], channels=self.spec.channels)
        label = self.spec.label.from_file(read_label_array(self.root / e["label"]), str(self.root / e["label"]))
        return Sample(id=f"synthetic-{e['index']:06d}", image=image, label=label.numpy(), meta=dict(e))
