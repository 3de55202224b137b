"""The pytest plugin (entry point ``pytest11 = msaug``): fixtures with tiny real-like samples.

Fixtures (and the ``realdata`` marker):

* ``tiny_dataset``: 6 cases, 32 px, grey, index encoding (``background, disc, bar``);
* ``tiny_multilabel_dataset``: 6 cases, 32 px, RGB, multilabel (``disc, bar``, overlapping),
  with a circular region of interest;
* ``make_tiny_dataset``: the factory behind both, ``make_tiny_dataset(size=..., count=...,
  encoding=..., channels=..., roi=..., seed=...)``;
* ``tiny_label``, ``tiny_image``, ``tiny_noise``: batches of 4 of each modality, viewed from
  ``tiny_dataset`` (``[4, 3, 32, 32]``, ``[4, 1, 32, 32]``, ``[4, 16]``);
* ``real_data``: ``real_data("DRIVE")`` is ``$MSAUG_DATA/DRIVE``, or a skip with the reason.

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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "realdata: needs real datasets under $MSAUG_DATA (skipped, with the reason, where they are absent)"
    )


@pytest.fixture
def real_data() -> Callable[[str], Any]:
    """``real_data("DRIVE")``: the path ``$MSAUG_DATA/DRIVE``, or a skip saying what is missing.

    Real datasets cannot ship with msaug (their licences forbid it), so tests that need one
    carry ``@pytest.mark.realdata`` and take their folder from this fixture.
    """
    from msaug.data import DATA_ENV, real_data_root

    def find(name: str) -> Any:
        root = real_data_root()
        if root is None:
            pytest.skip(f"real data: {DATA_ENV} is not set (point it at the folder holding {name}/)")
        folder = root / name
        if not folder.is_dir():
            pytest.skip(f"real data: {folder} does not exist ({DATA_ENV}={root})")
        return folder

    return find
