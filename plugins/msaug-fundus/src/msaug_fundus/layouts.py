"""The original release layouts of DRIVE, CHASE_DB1, HRF and STARE.

Each function finds the cases of one release under ``data.root`` and returns a
:class:`~msaug_fundus.real.RealFundusDataset`. A folder that does not look like the
release raises :class:`msaug.DataError` naming the file or folder that was expected.

=============  ==========================================================================
DRIVE          ``{training,test}/images/NN_{training,test}.tif``,
               ``{training,test}/1st_manual/NN_manual1.gif`` (``test/2nd_manual/NN_manual2.gif``),
               ``{training,test}/mask/NN_{training,test}_mask.gif``
CHASE_DB1      ``Image_NN{L,R}.jpg`` with ``Image_NN{L,R}_1stHO.png`` / ``_2ndHO.png``; no masks
HRF            ``images/NN_{h,g,dr}.jpg`` (or ``.JPG``), ``manual1/NN_{h,g,dr}.tif``,
               ``mask/NN_{h,g,dr}_mask.tif``
STARE          ``imNNNN.ppm`` with ``imNNNN.ah.ppm`` (Hoover) / ``imNNNN.vk.ppm`` (Kouznetsova)
               labels, each possibly gzipped (``.ppm.gz``), in any sub-folders; no masks
=============  ==========================================================================

Official splits (``data.split: official``): DRIVE has one, training 21-40 train and test
01-20 test (with ``subset: all``, the default); CHASE_DB1, HRF and STARE publish none, so
they split by a seeded shuffle (``data.split: {test: 0.2, seed: 0}``).
"""

from __future__ import annotations

import re
from pathlib import Path

from msaug import ConfigError, DataConfig, DataError

from msaug_fundus.real import CaseFiles, RealFundusDataset, dataset_root
from msaug_fundus.spec import choose, read_options


def _files(folder: Path, pattern: str) -> dict[str, Path]:
    """Files in ``folder`` whose whole name matches ``pattern`` (case-insensitive), by first group."""
    rx = re.compile(pattern, re.IGNORECASE)
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        m = rx.fullmatch(path.name)
        if m and path.is_file():
            found.setdefault(m.group(1), path)
    return found


def _need_dir(folder: Path, release: str) -> Path:
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found; the {release} layout needs it")
    return folder


def _need(found: dict[str, Path], key: str, folder: Path, expected: str) -> Path:
    if key not in found:
        raise DataError(f"{folder / expected}: file not found (every photograph needs one)")
    return found[key]


class DriveDataset(RealFundusDataset):
    """DRIVE's cases, with the split its authors published (and every paper reports on)."""

    @property
    def ids(self) -> list[str]:
        return [case.id for case in self.cases]

    def official_split(self) -> dict[str, list[int]]:
        """``training/`` (photographs 21-40) trains, ``test/`` (01-20) is held out.

        Needs both folders (``data.options.subset: all``, the default); with one subset
        there is no held-out half to compare with published results.
        """
        parts: dict[str, list[int]] = {"train": [], "test": []}
        for i, case in enumerate(self.cases):
            parts["train" if case.meta["subset"] == "training" else "test"].append(i)
        if not parts["train"] or not parts["test"]:
            only = "training" if parts["train"] else "test"
            raise ConfigError(
                f"data.split: official: DRIVE's official split is training (21-40) / test (01-20), but only the {only} "
                "subset is loaded; set data.options.subset=all (and no data.count that cuts the test photographs off)"
            )
        return parts


def drive_dataset(config: DataConfig) -> RealFundusDataset:
    """DRIVE (Staal et al. 2004): 40 photographs, 565 x 584, FOV masks, two annotators on test."""
    options = read_options(config, {"subset": "all", "annotator": 1})
    subsets = choose(config, "subset", options["subset"], {"all": ("training", "test"), "training": ("training",), "test": ("test",)})
    annotator = choose(config, "annotator", options["annotator"], {1: 1, 2: 2, "1st": 1, "2nd": 2})
    root = dataset_root(config, "DRIVE")
    cases: list[CaseFiles] = []
    for subset in subsets:
        base = _need_dir(root / subset, "DRIVE")
        images = _files(_need_dir(base / "images", "DRIVE"), rf"(\d+)_{subset}\.tiff?")
        if not images:
            raise DataError(f"{base / 'images'}: no photographs named NN_{subset}.tif")
        manual_dir = base / ("1st_manual" if annotator == 1 else "2nd_manual")
        if not manual_dir.is_dir():
            hint = " (DRIVE has a second annotator on the test set only: set data.options.subset=test)" if annotator == 2 else ""
            raise DataError(f"{manual_dir}: folder not found; the DRIVE layout needs it{hint}")
        labels = _files(manual_dir, rf"(\d+)_manual{annotator}\.gif")
        masks = _files(_need_dir(base / "mask", "DRIVE"), rf"(\d+)_{subset}_mask\.gif")
        for key, image in images.items():
            label = _need(labels, key, manual_dir, f"{key}_manual{annotator}.gif")
            mask = _need(masks, key, base / "mask", f"{key}_{subset}_mask.gif")
            cases.append(CaseFiles(f"drive-{subset}-{key}", image, label, mask, {"subset": subset, "annotator": annotator}))
    return DriveDataset("fundus.drive", cases, config)


def chase_db1_dataset(config: DataConfig) -> RealFundusDataset:
    """CHASE_DB1 (Fraz et al. 2012): 28 child photographs, 999 x 960, two annotators, no masks."""
    options = read_options(config, {"annotator": 1})
    annotator = choose(config, "annotator", options["annotator"], {1: "1stHO", 2: "2ndHO", "1stHO": "1stHO", "2ndHO": "2ndHO"})
    root = dataset_root(config, "CHASE_DB1")
    images = _files(root, r"(Image_\d+[LR])\.jpe?g")
    if not images:
        raise DataError(f"{root}: no photographs named Image_NNL.jpg / Image_NNR.jpg (CHASE_DB1 layout)")
    labels = _files(root, rf"(Image_\d+[LR])_{annotator}\.png")
    cases = [
        CaseFiles(f"chase-{key}", image, _need(labels, key, root, f"{key}_{annotator}.png"), None, {"annotator": annotator})
        for key, image in images.items()
    ]
    return RealFundusDataset("fundus.chase_db1", cases, config)


HRF_CONDITIONS = {"healthy": "h", "glaucoma": "g", "diabetic_retinopathy": "dr"}


def hrf_dataset(config: DataConfig) -> RealFundusDataset:
    """HRF (Budai et al. 2013): 45 photographs, 3504 x 2336, healthy/glaucoma/DR, FOV masks."""
    options = read_options(config, {"conditions": list(HRF_CONDITIONS)})
    wanted = options["conditions"]
    if isinstance(wanted, str):
        wanted = [wanted]
    suffixes = {choose(config, "conditions", c, HRF_CONDITIONS) for c in wanted}
    root = dataset_root(config, "HRF")
    images = _files(_need_dir(root / "images", "HRF"), r"(\d+_(?:h|g|dr))\.jpe?g")
    if not images:
        raise DataError(f"{root / 'images'}: no photographs named NN_h.jpg / NN_g.jpg / NN_dr.jpg (HRF layout)")
    labels = _files(_need_dir(root / "manual1", "HRF"), r"(\d+_(?:h|g|dr))\.tiff?")
    masks = _files(_need_dir(root / "mask", "HRF"), r"(\d+_(?:h|g|dr))_mask\.tiff?")
    cases = []
    for key, image in images.items():
        condition = key.split("_")[1].lower()
        if condition not in suffixes:
            continue
        label = _need(labels, key, root / "manual1", f"{key}.tif")
        mask = _need(masks, key, root / "mask", f"{key}_mask.tif")
        cases.append(CaseFiles(f"hrf-{key}", image, label, mask, {"condition": condition}))
    return RealFundusDataset("fundus.hrf", cases, config)


def stare_dataset(config: DataConfig) -> RealFundusDataset:
    """STARE (Hoover et al. 2000): the 20 labelled photographs, 700 x 605, two annotators, no masks."""
    options = read_options(config, {"annotator": "ah"})
    annotator = choose(config, "annotator", options["annotator"], {"ah": "ah", "vk": "vk", 1: "ah", 2: "vk"})
    root = dataset_root(config, "STARE")
    images: dict[str, Path] = {}
    labels: dict[str, Path] = {}
    for path in sorted(root.rglob("im*")):
        m = re.fullmatch(r"(im\d{4})(\.(?:ah|vk))?\.ppm(?:\.gz)?", path.name, re.IGNORECASE)
        if not m or not path.is_file():
            continue
        key = m.group(1).lower()
        if m.group(2) is None:
            images.setdefault(key, path)
        elif m.group(2).lower() == f".{annotator}":
            labels.setdefault(key, path)
    if not labels:
        raise DataError(f"{root}: no STARE vessel labels named imNNNN.{annotator}.ppm or imNNNN.{annotator}.ppm.gz")
    cases = []
    for key, label in labels.items():
        if key not in images:
            raise DataError(f"{label}: its photograph {key}.ppm (or {key}.ppm.gz) is not under {root}")
        cases.append(CaseFiles(f"stare-{key}", images[key], label, None, {"annotator": annotator}))
    return RealFundusDataset("fundus.stare", cases, config)
