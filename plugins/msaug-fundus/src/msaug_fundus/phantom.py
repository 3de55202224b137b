"""``fundus.phantom``: the embedded default dataset (procedural colour fundus photographs)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from msaug import ConfigError, DataConfig, Sample

from msaug_fundus.render import render_case
from msaug_fundus.spec import fundus_spec, read_options

#: cases made when ``data.count`` is not set (DRIVE has 40 photographs)
DEFAULT_COUNT = 40
#: largest side rendered; beyond it a case needs several GB of scratch memory
MAX_SIZE = 2048
OPTIONS = {"lesion_probability": 0.3}


class FundusPhantom:
    """Procedural fundus photographs; case *i* depends only on ``(data.seed, i)`` and the size.

    Cases are rendered on first access and kept (a 512 px case takes about half a second).
    """

    def __init__(self, config: DataConfig):
        options = read_options(config, OPTIONS)
        try:
            self.lesion_probability = float(options["lesion_probability"])
        except (TypeError, ValueError):
            self.lesion_probability = -1.0
        if not 0.0 <= self.lesion_probability <= 1.0:
            raise ConfigError(
                f"data.options.lesion_probability: must be a number in [0, 1], got {options['lesion_probability']!r}"
            )
        if config.size > MAX_SIZE:
            raise ConfigError(f"data.size: fundus.phantom renders at most {MAX_SIZE} px, got {config.size}")
        self.spec = fundus_spec(config.size)
        self.seed = config.seed
        self.count = config.count or DEFAULT_COUNT
        self._get = lru_cache(maxsize=256)(self._render)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Sample:
        if not -self.count <= index < self.count:
            raise IndexError(f"fundus.phantom has {self.count} cases, no case {index}")
        return self._get(index % self.count)

    def _render(self, index: int) -> Sample:
        case = render_case((self.seed, index), self.spec.size, self.lesion_probability)
        label = np.stack([~case.vessels, case.vessels]).astype(np.float32)
        return Sample(id=f"phantom-{self.seed}-{index:04d}", image=case.image, label=label, roi=case.fov, meta=case.meta)


def phantom_dataset(config: DataConfig) -> FundusPhantom:
    return FundusPhantom(config)
