"""msaug's commands keep freed host memory in the process (glibc), so tensors stop faulting in anew."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap

import pytest

from msaug.errors import ConfigError
from msaug.train.device import HOST_ALLOCATOR_ENV, tune_host_allocator

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

#: where a fresh 64 MiB tensor's memory lives: glibc's heap (``[heap]`` in /proc/self/maps) or a mapping of its own
_PROBE = textwrap.dedent(
    """
    import json
    import torch
    from msaug.train.device import tune_host_allocator
    said = tune_host_allocator()
    x = torch.empty(16 * 1024 * 1024)  # float32: 64 MiB, above glibc's largest mmap threshold (32 MiB)
    x.fill_(2.0)
    where = None
    for line in open("/proc/self/maps"):
        fields = line.split()
        low, high = (int(v, 16) for v in fields[0].split("-"))
        if low <= x.data_ptr() < high:
            where = fields[5] if len(fields) > 5 else "anonymous"
    print(json.dumps({"said": said, "where": where, "sum": float(x[:4].sum())}))
    """
)


def _probe(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k not in ("GLIBC_TUNABLES", HOST_ALLOCATOR_ENV)}
    done = subprocess.run([sys.executable, "-c", _PROBE], env={**clean, **env}, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="the host allocator is tuned on glibc (Linux) only")
def test_large_tensors_come_from_the_kept_heap_not_from_a_mapping_of_their_own() -> None:
    kept = _probe()
    system = _probe(**{HOST_ALLOCATOR_ENV: "system"})
    assert kept == {"said": "keep", "where": "[heap]", "sum": 8.0}  # reused after a free, never unmapped
    # glibc's default: a fresh mmap, unmapped on free, so every reuse faults its pages in again
    assert system == {"said": "system (MSAUG_HOST_ALLOCATOR=system)", "where": "anonymous", "sum": 8.0}


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({HOST_ALLOCATOR_ENV: "system"}, "system (MSAUG_HOST_ALLOCATOR=system)"),
        ({"MALLOC_TRIM_THRESHOLD_": "100000"}, "system (the environment sets MALLOC_TRIM_THRESHOLD_)"),
        ({"GLIBC_TUNABLES": "glibc.malloc.mmap_max=0"}, "system (the environment sets GLIBC_TUNABLES)"),
        ({"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"}, "system (LD_PRELOAD brings another allocator)"),
    ],
)
def test_a_user_choice_of_allocator_is_left_alone(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], said: str) -> None:
    for key in [k for k in os.environ if k.startswith("MALLOC_")] + [HOST_ALLOCATOR_ENV, "GLIBC_TUNABLES", "LD_PRELOAD"]:
        monkeypatch.delenv(key, raising=False)  # the environment this test runs in holds no choice of its own
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert tune_host_allocator() == said


def test_an_unknown_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HOST_ALLOCATOR_ENV, "jemalloc")
    with pytest.raises(ConfigError, match=r"MSAUG_HOST_ALLOCATOR='jemalloc': valid values are keep or system"):
        tune_host_allocator()


def test_the_command_line_refuses_an_unknown_setting_before_any_work() -> None:
    env = {**os.environ, HOST_ALLOCATOR_ENV: "fast"}
    done = subprocess.run([sys.executable, "-m", "msaug", "stages", "list"], env=env, capture_output=True, text=True, timeout=120)
    out = done.stdout + done.stderr
    assert done.returncode == 2
    assert "MSAUG_HOST_ALLOCATOR='fast': valid values are keep or system" in out
    assert "Traceback" not in out
