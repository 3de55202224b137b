"""Loaders for the public chest X-ray datasets in their original layouts, and DICOM folders."""

from __future__ import annotations

from msaug_xray.loaders.dicom import dicom_dataset, read_dicom
from msaug_xray.loaders.montgomery import montgomery_dataset
from msaug_xray.loaders.scr import read_jsrt, scr_dataset
from msaug_xray.loaders.shenzhen import shenzhen_dataset

__all__ = ["dicom_dataset", "montgomery_dataset", "read_dicom", "read_jsrt", "scr_dataset", "shenzhen_dataset"]
