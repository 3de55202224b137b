"""What a check of a dataset, a synthetic set or a run folder found: :class:`VerifyReport`.

Core-level so that every layer's checkers (the nnU-Net folder check next to the nnunet
dataset, ``msaug data verify`` in the pipeline layer) fill the same record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from msaug.errors import MsaugError

T = TypeVar("T")


@dataclass
class VerifyReport:
    target: str
    kind: str
    checked: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def attempt(self, check: Callable[..., T], *args: Any) -> T | None:
        """Run one check; an error it raises becomes a problem line and the result None."""
        try:
            return check(*args)
        except MsaugError as exc:
            self.problems.append(str(exc))
            return None

    def warn(self, message: str | None) -> None:
        if message and message not in self.warnings:
            self.warnings.append(message)

    def summary(self) -> str:
        """The closing line: what was checked and how it went."""
        note = f" ({len(self.warnings)} warning{'s' if len(self.warnings) > 1 else ''})" if self.warnings else ""
        if self.ok:
            return f"{self.kind} {self.target}: {self.checked} items checked, no problems{note}"
        count = len(self.problems)
        return f"{self.kind} {self.target}: {count} problem{'s' if count > 1 else ''} in {self.checked} items{note}"
