"""Every CLI command against hostile inputs: exit 2, one ``error:`` line, no traceback, and
nothing changed in the user's files (a dataset folder, a file, a YAML) next to them.

The table holds, per command, inputs a user plausibly gets wrong: missing paths, a file where
a folder belongs and the reverse, a folder msaug did not create, empty and binary files,
out-of-range and non-numeric numbers, names that are keywords or paths.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from msaug.cli import cli
from tests.conftest import CLASSIC


def tree_state(root: Path) -> dict[str, tuple[int, str]]:
    """Every path under ``root`` with its mode and content hash (folders: mode only)."""
    state = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        state[rel] = (path.stat().st_mode, digest)
    return state


@pytest.fixture
def user(tmp_path):
    """A user's workspace: a dataset folder msaug did not create, a notes file, a good and bad YAMLs."""
    data = tmp_path / "my-dataset"
    (data / "images").mkdir(parents=True)
    (data / "images" / "case01.png").write_bytes(b"\x89PNG not really")
    (data / "notes.txt").write_text("keep me\n")
    (tmp_path / "notes.txt").write_text("my notes\n")
    (tmp_path / "good.yaml").write_text(yaml.safe_dump({**CLASSIC, "name": "good"}))
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "binary.yaml").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "list.yaml").write_text("- just\n- a list\n")
    return tmp_path


# (command words, arguments with {tmp} for the workspace); every case must be refused cleanly
CASES = [
    ("stages list", ["--filter"]),
    ("stages list", ["--json", "extra"]),
    ("datasets list", ["--bogus"]),
    ("segment list", ["extra"]),
    ("pipeline check", ["{tmp}/missing.yaml"]),
    ("pipeline check", ["{tmp}/my-dataset"]),
    ("pipeline check", ["{tmp}/empty.yaml"]),
    ("pipeline check", ["{tmp}/binary.yaml"]),
    ("pipeline check", ["{tmp}/list.yaml"]),
    ("pipeline check", ["{tmp}/notes.txt"]),
    ("pipeline check", ["{tmp}/good.yaml", "--profile", "nosuch"]),
    ("pipeline check", ["{tmp}/good.yaml", "--set", "bogus"]),
    ("pipeline check", ["{tmp}/good.yaml", "--set", "data.size=-1"]),
    ("pipeline check", ["{tmp}/good.yaml", "--set", "name=../../escape"]),
    ("pipeline check", ["{tmp}/good.yaml", "--set", "stages.0.budget.steps=0"]),
    ("pipeline run", ["{tmp}/good.yaml", "--out", "{tmp}/my-dataset"]),
    ("pipeline run", ["{tmp}/good.yaml", "--out", "{tmp}/my-dataset", "--resume"]),
    ("pipeline run", ["{tmp}/good.yaml", "--out", "{tmp}/my-dataset", "--overwrite"]),
    ("pipeline run", ["{tmp}/good.yaml", "--out", "{tmp}/notes.txt"]),
    ("pipeline run", ["{tmp}/good.yaml", "--out", "{tmp}/notes.txt/below"]),
    ("pipeline run", ["{tmp}/good.yaml", "--seed", "abc"]),
    ("pipeline run", ["{tmp}/good.yaml", "--resume", "--overwrite", "--out", "{tmp}/new"]),
    ("pipeline run", ["{tmp}/binary.yaml", "--out", "{tmp}/new"]),
    ("generate", ["{tmp}/missing"]),
    ("generate", ["{tmp}/my-dataset"]),
    ("generate", ["{tmp}/notes.txt"]),
    ("generate", ["{tmp}/my-dataset", "--count", "-1"]),
    ("generate", ["{tmp}/my-dataset", "--shard", "5/2"]),
    ("generate", ["{tmp}/my-dataset", "--out", "{tmp}/my-dataset"]),
    ("compare", ["single"]),
    ("compare", ["nosuch", "single"]),
    ("compare", ["{tmp}/good.yaml", "{tmp}/good.yaml", "--out", "{tmp}/cmp"]),
    ("compare", ["single", "multi", "--seeds", "0"]),
    ("compare", ["single", "multi", "--train-fraction", "2"]),
    ("compare", ["single", "multi", "--budget", "soon"]),
    ("compare", ["single", "multi", "--protocols", "bogus"]),
    ("data verify", ["{tmp}/missing"]),
    ("data verify", ["nosuch-dataset"]),
    ("data verify", ["{tmp}/my-dataset", "--size", "0"]),
    ("data verify", ["{tmp}/my-dataset", "--channels", "9"]),
    ("data verify", ["{tmp}/my-dataset", "--option", "bogus"]),
    ("segment train", ["--data", "nosuch"]),
    ("segment train", ["--data", "folder", "--root", "{tmp}/missing"]),
    ("segment train", ["--data", "folder", "--root", "{tmp}/notes.txt"]),
    ("segment train", ["--data", "xray.phantom", "--count", "0"]),
    ("segment train", ["--data", "xray.phantom", "--protocol", "bogus"]),
    ("segment train", ["--data", "xray.phantom", "--protocol", "mix", "--synthetic", "{tmp}/my-dataset"]),
    ("segment eval", ["--checkpoint", "{tmp}/missing", "--data", "xray.phantom"]),
    ("segment eval", ["--checkpoint", "{tmp}/my-dataset", "--data", "xray.phantom"]),
    ("segment qc", ["{tmp}/missing", "--checkpoint", "{tmp}/missing"]),
    ("segment qc", ["{tmp}/my-dataset", "--checkpoint", "{tmp}/my-dataset"]),
    ("export nnunet", ["{tmp}/missing", "--out", "{tmp}/raw"]),
    ("export nnunet", ["{tmp}/my-dataset", "--out", "{tmp}/raw"]),
    ("export nnunet", ["{tmp}/my-dataset", "--out", "{tmp}/raw", "--dataset-id", "-1"]),
    ("export nnunet", ["{tmp}/my-dataset", "--out", "{tmp}/raw", "--dataset-id", "1", "--name", "X", "--overlaps", "split"]),
    ("export merge-split", ["{tmp}/missing.json", "{tmp}/my-dataset", "--out", "{tmp}/new"]),
    ("export merge-split", ["{tmp}/my-dataset", "{tmp}/my-dataset", "--out", "{tmp}/new"]),
    ("export merge-split", ["{tmp}/notes.txt", "{tmp}/my-dataset", "--out", "{tmp}/new"]),
    ("data verify", ["{tmp}/missing.json"]),
    ("export monai", ["{tmp}/missing", "--out", "{tmp}/list.json"]),
    ("export monai", ["{tmp}/my-dataset", "--out", "{tmp}/my-dataset"]),
    ("plugin new", ["class", "--dir", "{tmp}/plugins"]),
    ("plugin new", ["msaug", "--dir", "{tmp}/plugins"]),
    ("plugin new", ["Bad-Name", "--dir", "{tmp}/plugins"]),
    ("plugin new", ["", "--dir", "{tmp}/plugins"]),
    ("plugin new", ["derm2", "--dir", "{tmp}/notes.txt"]),
]


@pytest.mark.parametrize(("command", "args"), CASES, ids=[f"{c}:{' '.join(a)}" for c, a in CASES])
def test_hostile_input_is_refused_cleanly_and_changes_nothing(user, command, args):
    before = tree_state(user)
    argv = [*command.split(), *(a.format(tmp=user) for a in args)]
    result = CliRunner().invoke(cli, argv)
    text = result.output  # stdout and stderr together, as a user sees them
    assert result.exit_code == 2, f"{argv}: exit {result.exit_code}\n{text}"
    assert "Traceback" not in text and result.exception is None or isinstance(result.exception, SystemExit), text
    errors = [line for line in text.splitlines() if line.lower().startswith("error:")]
    assert len(errors) == 1, f"{argv}: expected one error line\n{text}"
    assert "internal error" not in text, text
    after = tree_state(user)
    created = sorted(set(after) - set(before))
    assert {k: v for k, v in after.items() if k in before} == before, f"{argv} changed the user's files"
    assert not [c for c in created if not c.startswith(("new", "cmp", "raw", "plugins"))], f"{argv} created {created}"


def test_every_command_is_in_the_hostile_table():
    import click

    def leaves(group: click.Group, path: tuple[str, ...] = ()) -> set[str]:
        out: set[str] = set()
        for name, sub in group.commands.items():
            out |= leaves(sub, (*path, name)) if isinstance(sub, click.Group) else {" ".join((*path, name))}
        return out

    covered = {" ".join(c.split()[:2]) if c.split()[0] in ("pipeline", "data", "segment", "export", "plugin", "stages", "datasets") else c.split()[0]
               for c, _ in CASES}
    missing = leaves(cli) - covered
    assert not missing, f"commands without hostile-input cases: {sorted(missing)}"
