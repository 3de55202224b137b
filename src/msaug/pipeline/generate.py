"""Deterministic, sharded, resumable generation of synthetic pairs.

Indices are grouped in fixed blocks of ``batch_size`` (block *b* holds indices
``b*B .. b*B+B-1``); shard *i* of *n* takes the blocks ``b % n == i``. Every stage draws
the randomness of pair *k* from its own stream seeded by ``(seed, k, stage position)``, so
pair *k* is the same file whatever the sharding, and a resumed run regenerates only the
blocks that still miss a pair.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from msaug.errors import ConfigError, DataError
from msaug.pipeline.composer import Chain
from msaug.rng import BatchRNG
from msaug.synthetic import DESCRIPTION, MANIFEST, SyntheticWriter, read_description, shard_manifest

#: fields of the dataset.json that :class:`msaug.synthetic.SyntheticWriter` writes; a folder whose
#: dataset.json lacks them was not made by msaug generate
_DESCRIPTION_FIELDS = ("classes", "encoding", "channels", "size", "label_format")


@dataclass
class GenerationResult:
    count: int
    written: int
    skipped: int
    seconds: float
    complete: bool

    @property
    def pairs_per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` to ``(i, n)`` with 0 <= i < n."""
    try:
        i, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r}: expected I/N, e.g. 0/4 for the first of four shards") from None
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard {text!r}: need 0 <= I < N (shards are numbered from 0)")
    return i, n


@torch.inference_mode()
def run_chain(chain: Chain, indices: list[int], seed: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Run every stage on one batch of indices; returns the product (images, labels) on CPU."""
    outputs: list[tuple[torch.Tensor, ...]] = []
    for pos, cs in enumerate(chain.stages):
        rng = BatchRNG.for_indices(seed, indices, stream=pos)
        source = chain.inputs[pos]
        x = None if source is None else outputs[source[0]][source[1]].to(device)
        out = cs.stage.generate(x, rng)
        outputs.append(out if isinstance(out, tuple) else (out,))
    image = outputs[chain.image_at[0]][chain.image_at[1]]
    label = outputs[chain.label_at[0]][chain.label_at[1]]
    return image.float().cpu(), label.float().cpu()


def generate(
    chain: Chain,
    writer: SyntheticWriter,
    count: int,
    batch_size: int,
    seed: int,
    device: torch.device,
    shard: tuple[int, int] = (0, 1),
    stage_hashes: dict[str, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> GenerationResult:
    """Generate the pairs of ``shard`` that are not on disk yet."""
    start = time.monotonic()
    index, shards = shard
    manifest_name = MANIFEST if shards == 1 else shard_manifest(index, shards)
    writer.repair(manifest_name)
    existing = writer.existing()
    check_existing_set(writer, existing, count, seed, stage_hashes)
    if writer.found_description != writer.description:
        writer.write_description()
    blocks = [b for b in range((count + batch_size - 1) // batch_size) if b % shards == index]
    todo_total = sum(1 for b in blocks for i in range(b * batch_size, min(count, (b + 1) * batch_size)) if i not in existing)
    written = skipped = 0
    extra = {"stages": dict(stage_hashes or {})}
    for block in blocks:
        indices = list(range(block * batch_size, min(count, (block + 1) * batch_size)))
        rows = [(row, i) for row, i in enumerate(indices) if i not in existing]
        skipped += len(indices) - len(rows)
        if not rows:
            continue
        images, labels = run_chain(chain, indices, seed, device)
        entries = [writer.write_pair(i, images[row], labels[row], seed, extra) for row, i in rows]
        writer.append_manifest(entries, manifest_name)  # after the files: a listed pair is always on disk
        existing.update({e["index"]: e for e in entries})
        written += len(entries)
        if progress is not None:
            progress(written, todo_total)
    everything = writer.existing()
    complete = all(i in everything for i in range(count))
    if complete:
        writer.finalize({i: everything[i] for i in range(count)})
    return GenerationResult(count, written, skipped, time.monotonic() - start, complete)


def check_generate_out(out: Path) -> None:
    """Refuse an ``msaug generate --out`` folder that msaug did not make.

    The folder may be missing (it is created), empty, or a synthetic set an earlier
    ``msaug generate`` wrote (it is then continued or grown); anything else belongs to the
    user and nothing is written into it.
    """
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder; name a new folder (msaug creates it)")
    if not out.is_dir() or _only_leftovers(out):
        return
    meta = read_description(out)
    if meta is None or not all(key in meta for key in _DESCRIPTION_FIELDS):
        raise ConfigError(
            f"--out {out}: the folder exists and was not written by msaug generate, so nothing is written into it; "
            "name a new or empty folder (msaug creates it), or a set an earlier msaug generate --out wrote to continue it"
        )


def _only_leftovers(folder: Path) -> bool:
    """True when ``folder`` holds nothing but empty ``images``/``labels`` folders and temporary files
    (another shard starting at the same moment leaves exactly that)."""
    for entry in folder.iterdir():
        if entry.name.startswith(".") and entry.name.endswith(".tmp"):
            continue
        if entry.name in ("images", "labels") and entry.is_dir() and not any(entry.iterdir()):
            continue
        return False
    return True


#: description fields that change the files of a pair; pairs written under other values cannot join a set
_FORMAT_FIELDS = ("classes", "encoding", "channels", "size", "bit_depth")


def check_existing_set(
    writer: SyntheticWriter, existing: dict[int, dict[str, Any]], count: int, seed: int, stage_hashes: dict[str, str] | None
) -> None:
    """Refuse to shrink the set in ``writer.root`` or to mix into it pairs of another seed, other
    stage weights or another file format.

    Generating ``count`` pairs rewrites the manifest for indices ``0..count-1``; pairs above that
    would silently drop out of the set (their files orphaned), so that is refused.
    """
    root = writer.root
    on_disk = set(existing) | {int(p.stem) for sub in ("images", "labels") for p in (root / sub).glob("*.png") if p.stem.isdigit()}
    dropped = sorted(i for i in on_disk if i >= count)
    if dropped:
        raise DataError(
            f"{root} already holds {len(on_disk)} pairs (indices up to {max(on_disk)}); a count of {count} would drop "
            f"{len(dropped)} of them from the set. Ask for a count of at least {max(on_disk) + 1} to add to it, or write a "
            f"separate set of {count} into a new folder with msaug generate RUN_DIR --count {count} --out NEW_FOLDER"
        )
    found = writer.found_description or {}
    for key in _FORMAT_FIELDS if on_disk else ():
        if key in found and found[key] != writer.description[key]:
            raise DataError(
                f"{root / DESCRIPTION}: the pairs there have {key} {found[key]!r}, but this run writes {writer.description[key]!r}; "
                "adding to that set would mix two formats. Write into a new folder (msaug generate --out NEW_FOLDER)"
            )
    for index in sorted(existing):
        entry = existing[index]
        if "seed" in entry and entry["seed"] != seed:
            raise DataError(
                f"{root}: pair {index} was generated with seed {entry['seed']}, but this run generates with seed {seed}; "
                "adding to that set would mix two seeds. Write into a new folder (msaug generate --out NEW_FOLDER)"
            )
        old = entry.get("stages")
        if stage_hashes is not None and isinstance(old, dict) and old != stage_hashes:
            changed = sorted(k for k in {*old, *stage_hashes} if old.get(k) != stage_hashes.get(k))
            raise DataError(
                f"{root}: pair {index} was generated by other stage weights ({', '.join(changed)} differ from this run's), "
                "so adding to that set would mix two generators. Write into a new folder (msaug generate --out NEW_FOLDER)"
            )
