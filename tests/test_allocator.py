"""The allocator setting that speeds up training must not leak into the memory a phase reports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tuning_bench.engine.allocator import _glibc

pytestmark = pytest.mark.skipif(_glibc() is None, reason="needs glibc")

PROBE = r"""
import json, sys, torch
from tuning_bench.engine.allocator import release_free_memory, reuse_freed_memory
from tuning_bench.engine.measure import _proc_status
reuse = sys.argv[1] == "reuse"
took_effect = reuse_freed_memory() if reuse else None
rss = lambda: _proc_status()["VmRSS"]
before = rss()
blocks = [torch.ones(6 << 20) for _ in range(8)]  # 8 x 24 MiB, each touched
del blocks
after_free = rss()
release_free_memory()
print(json.dumps({"took_effect": took_effect, "before": before, "after_free": after_free, "after_release": rss()}))
"""


def _probe(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])


def test_freed_memory_is_kept_for_reuse_and_released_between_phases():
    mib = 1 << 20
    kept = _probe("reuse")
    assert kept["took_effect"] is True
    assert kept["after_free"] - kept["before"] > 150 * mib  # freed blocks stayed with the process
    assert kept["after_release"] - kept["before"] < 30 * mib  # and went back to the kernel on release


def test_default_allocator_returns_large_blocks_at_once():
    plain = _probe("plain")
    assert plain["after_free"] - plain["before"] < 30 << 20

