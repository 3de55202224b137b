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

import torch

from msaug.pipeline.composer import Chain
from msaug.rng import BatchRNG
from msaug.synthetic import MANIFEST, SyntheticWriter, shard_manifest


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
    from msaug.errors import ConfigError

    try:
        i, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r}: expected I/N, e.g. 0/4 for the first of four shards") from None
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard {text!r}: need 0 <= I < N (shards are numbered from 0)")
    return i, n


@torch.no_grad()
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
    blocks = [b for b in range((count + batch_size - 1) // batch_size) if b % shards == index]
    todo_total = sum(1 for b in blocks for i in range(b * batch_size, min(count, (b + 1) * batch_size)) if i not in existing)
    written = skipped = 0
    extra = {"stages": dict(stage_hashes or {})}
    for block in blocks:
        indices = list(range(block * batch_size, min(count, (block + 1) * batch_size)))
        missing = [i for i in indices if i not in existing]
        skipped += len(indices) - len(missing)
        if not missing:
            continue
        images, labels = run_chain(chain, indices, seed, device)
        entries = []
        for row, i in enumerate(indices):
            if i in missing:
                entries.append(writer.write_pair(i, images[row], labels[row], seed, extra))
        writer.append_manifest(entries, manifest_name)
        existing.update({e["index"]: e for e in entries})
        written += len(entries)
        if progress is not None:
            progress(written, todo_total)
    everything = writer.existing()
    complete = all(i in everything for i in range(count))
    if complete:
        writer.finalize({i: everything[i] for i in range(count)})
    return GenerationResult(count, written, skipped, time.monotonic() - start, complete)
