"""The pytest plugin (entry point ``pytest11 = msaug``): fixtures with tiny real-like samples.

Fixtures:

* ``tiny_dataset``: 6 cases, 32 px, grey, index encoding (``background, disc, bar``);
* ``tiny_multilabel_dataset``: 6 cases, 32 px, RGB, multilabel (``disc, bar``, overlapping),
  with a circular region of interest;
* ``make_tiny_dataset``: the factory behind both, ``make_tiny_dataset(size=..., count=...,
  encoding=..., channels=..., roi=..., seed=...)``;
* ``tiny_label``, ``tiny_image``, ``tiny_noise``: batches of 4 of each modality, viewed from
  ``tiny_dataset`` (``[4, 3, 32, 32]``, ``[4, 1, 32, 32]``, ``[4, 16]``).

msaug is imported only when a fixture is used, so the plugin costs nothing in test
sessions that do not touch it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.fixture
def make_tiny_dataset() -> Callable[..., Any]:
    from msaug.testing.samples import tiny_dataset

    return tiny_dataset


@pytest.fixture
def tiny_dataset(make_tiny_dataset: Callable[..., Any]) -> Any:
    return make_tiny_dataset(size=32, count=6, encoding="index", channels=1)


@pytest.fixture
def tiny_multilabel_dataset(make_tiny_dataset: Callable[..., Any]) -> Any:
    return make_tiny_dataset(size=32, count=6, encoding="multilabel", channels=3, roi=True)


@pytest.fixture
def tiny_label(tiny_dataset: Any) -> Any:
    from msaug.testing.samples import tiny_batch

    return tiny_batch(tiny_dataset.spec.label, tiny_dataset, 4)


@pytest.fixture
def tiny_image(tiny_dataset: Any) -> Any:
    from msaug.testing.samples import tiny_batch

    return tiny_batch(tiny_dataset.spec.image, tiny_dataset, 4)


@pytest.fixture
def tiny_noise() -> Any:
    from msaug.modality import Noise
    from msaug.testing.samples import tiny_batch

    return tiny_batch(Noise(16), [], 4)  # type: ignore[arg-type]
