"""Worker launched by test_distributed.py under torchrun: fits a tiny label generator with DDP.

Every rank saves the generator and discriminator weights it ended with to OUT/rank<R>.safetensors.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from msaug import Budget, DataSpec, FitContext, Noise, Pairs
from msaug.train import distributed
from msaug.train.stages import LabelGeneratorStage

sys.path.insert(0, str(Path(__file__).parent))
from conftest import CLASSES, SIZE, synthetic_index_labels  # noqa: E402


def main(out: Path) -> None:
    torch.set_num_threads(1)
    assert distributed.init_from_env(), "expected torchrun to start 2 processes"
    spec = DataSpec(CLASSES, "index", 1, SIZE)
    labels = synthetic_index_labels(12)
    stage = LabelGeneratorStage(
        {"width": 8, "batch_size": 4, "grad_accum": 2, "r1_every": 2, "log_every": 2, "sample_every": 3, "checkpoint_every": 3},
        spec,
    )
    summary = stage.fit(Pairs(Noise(128), spec.label, None, labels), Budget(steps=4), FitContext(out / "stage", show_progress=False))
    tensors = {f"G.{k}": v for k, v in stage.trainer.G.state_dict().items()}
    tensors.update({f"D.{k}": v for k, v in stage.trainer.D.state_dict().items()})
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out / f"rank{distributed.rank()}.safetensors"))
    (out / f"rank{distributed.rank()}.done").write_text(f"{distributed.world_size()} {summary['steps']}\n")
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
