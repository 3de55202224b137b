"""Everything about the data a pipeline needs, checked before any training.

``msaug pipeline check`` (and therefore ``pipeline run``, whose :func:`~msaug.pipeline.runner.prepare`
calls :func:`check_data` first) reads every file the dataset offers to check, asks whether
each stage gets what it learns from (images, or labels only), and computes the train/test
split, so a bad mask value, an unpaired file, a missing cases table or a stage that needs
images of a labels-only folder fails in seconds, with one message, instead of after the
first stages trained.
"""

from __future__ import annotations

from dataclasses import dataclass

from msaug.data import DataConfig, Split, split_dataset
from msaug.errors import ConfigError, DataError, MsaugError
from msaug.pipeline.composer import Chain
from msaug.pipeline.config import LoadedYAML
from msaug.sample import Dataset


@dataclass(frozen=True)
class DataCheck:
    """What the check found: the split every later phase uses, and whether there are images."""

    split: Split
    has_images: bool


def dataset_has_images(dataset: Dataset) -> bool:
    """The dataset's ``has_images`` where it says so, else whether its first sample has an image."""
    flag = getattr(dataset, "has_images", None)
    if flag is not None:
        return bool(flag)
    return dataset[0].image is not None


def check_data(data: DataConfig, dataset: Dataset, chain: Chain, loaded: LoadedYAML | None = None,
               evaluate: bool = False) -> DataCheck:
    """Check the data against what the pipeline asks of it; raise a ConfigError/DataError on the first problem.

    In order: every file (the dataset's own ``check()``: label values, sizes, pairing), the
    square fit, what each stage learns from, the split (official, grouped or shuffled) and,
    with ``evaluate``, that the test split has real images to score segmenters on.
    """
    where = (lambda *key: loaded.where(("data", *key))) if loaded is not None else (lambda *key: ".".join(("data", *key)))
    check = getattr(dataset, "check", None)
    if callable(check):
        check()
    if data.square_fit is not None:
        actual = getattr(dataset, "square_fit", "pad")
        if data.square_fit != actual:
            raise ConfigError(f"{where('square_fit')}: dataset {data.dataset!r} fits its images by {actual!r} only; remove the key or set it to {actual!r}")
    has_images = dataset_has_images(dataset)
    if not has_images:
        for cs in chain.stages:
            if cs.stage.learns_images():
                raise DataError(
                    f"{cs.label} learns images, but dataset {data.dataset!r} has labels only"
                    + (f" (no {data.root}/images folder)" if data.root is not None else "")
                    + "; add the images, or render images from labels with a stage that needs none, e.g. core.lab2im"
                )
        if evaluate:
            raise ConfigError(
                f"evaluate: segmenters are trained and scored on real images, but dataset {data.dataset!r} has labels only; "
                "remove the evaluate block (or add the images)"
            )
    try:
        split = split_dataset(dataset, data)
    except MsaugError as exc:
        raise type(exc)(f"{loaded.path}: {exc}" if loaded is not None else str(exc)) from None
    if not split.train:
        raise DataError(f"{where('split')}: dataset {data.dataset!r} has no training samples after the split")
    if evaluate and not split.test:
        raise ConfigError(f"{where('split')}: the evaluate block scores segmenters on the test split, which is empty: {_why_no_test(data, len(dataset))}")
    return DataCheck(split, has_images)


def _why_no_test(data: DataConfig, cases: int) -> str:
    """Why a split left no test case, and what to change (not "raise data.split.test" when it is 0.5 already)."""
    if data.split.by == "official":
        return (f"the official split of {data.dataset!r} has no test cases among the {cases} loaded; "
                "load the whole dataset (data.count) or remove the evaluate block")
    if data.split.test == 0:
        return "data.split.test is 0: set it above 0 (e.g. 0.2), or remove the evaluate block"
    if cases < 2:
        return (f"dataset {data.dataset!r} has only {cases} case, and the split keeps at least one for training, "
                f"so data.split.test ({data.split.test:g}) gets none; add cases or remove the evaluate block")
    return f"data.split.test ({data.split.test:g}) of {cases} cases left none; add cases or remove the evaluate block"
