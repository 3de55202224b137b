"""Benchmarks: ``msaug compare`` (does multi-stage generation beat single-stage?)."""

from msaug.bench.compare import CompareOptions, compare

__all__ = ["CompareOptions", "compare"]
