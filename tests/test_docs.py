"""docs/pipelines.md documents every key of the pipeline schema, and only those."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from msaug.pipeline.schema import PipelineConfig

ROOT = Path(__file__).resolve().parents[1]


def schema_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    from msaug.pipeline.config import _model_in

    keys = set()
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{name}"
        sub = _model_in(field.annotation)
        if sub is not None and dotted != "stages":
            keys |= schema_keys(sub, f"{dotted}.") | {dotted}
        elif dotted == "stages":
            keys.add(dotted)
        else:
            keys.add(dotted)
    return keys


def documented_keys() -> set[str]:
    text = (ROOT / "docs/pipelines.md").read_text()
    keys: set[str] = set()
    section = ""
    for line in text.splitlines():
        if line.startswith("## "):
            section = re.sub(r"[`]", "", line[3:]).split()[0]
        m = re.match(r"\| `([a-z_.]+)` \|", line)
        if m:
            key = m.group(1)
            prefix = "" if section in ("Top", "Profiles") else f"{section}."
            keys.add(prefix + key)
    return keys


def test_every_schema_key_is_documented():
    expected = schema_keys(PipelineConfig)
    # stage items are documented in their own section
    from msaug.pipeline.schema import StageConfig

    expected |= {f"stages.{k}" for k in schema_keys(StageConfig)}
    documented = documented_keys()
    assert expected - documented == set(), "undocumented keys"
    assert documented - expected == set(), "documented keys that the schema lacks"
