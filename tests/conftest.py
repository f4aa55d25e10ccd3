"""Shared fixtures. Installed third-party plugins never leak into tests: TBENCH_PLUGINS is empty."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest

os.environ["TBENCH_PLUGINS"] = ""
os.environ.pop("TBENCH_BLOCK_PLUGINS", None)
os.environ.pop("TBENCH_PLUGIN_MODULES", None)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the tests may need the hub

TESTS = Path(__file__).parent
REPO = TESTS.parent
sys.path.insert(0, str(TESTS))  # test-only plugin modules (fake_plugins) import by name, also in cell processes


@pytest.fixture(autouse=True)
def fresh_plugins(monkeypatch):
    """Each test gets its own plugin host as the process-wide one, and leaves none behind."""
    from tuning_bench.host import plugins

    monkeypatch.setenv("TBENCH_PLUGINS", "")
    host = plugins.reset_default_host()
    yield host
    plugins.reset_default_host()


@pytest.fixture(autouse=True)
def bf16_measured_slow(monkeypatch):
    """`--precision auto` resolves to fp32 on a CPU in tests, whatever this machine's bf16 speed, so a
    run's results do not depend on the CPU that runs the tests; test_precision injects its own probes."""
    from tuning_bench.engine import precision

    monkeypatch.setattr(precision, "cached_probe", lambda: precision.Probe(fp32_seconds=1.0, bf16_seconds=1.0))


@pytest.fixture
def tiny(fresh_plugins):
    """Register the tiny test models and tasks (tuning_bench.testing) and the fake test methods."""
    assert fresh_plugins.add_module("tuning_bench.testing")
    assert fresh_plugins.add_module("fake_plugins")
    yield


@pytest.fixture
def fake_plugin(fresh_plugins):
    """Register a plugin module object under a name in this test's host: fake_plugin(name, **hooks)."""
    from tuning_bench import hookimpl

    def register(name: str, **hooks):
        module = types.ModuleType(name)
        for hook_name, function in hooks.items():
            setattr(module, hook_name, hookimpl(function))
        fresh_plugins.add_plugin(module, name)
        return module

    return register


@pytest.fixture
def cli_runner():
    from click.testing import CliRunner

    return CliRunner()


def run_tbench(runner, *args: str):
    """Invoke the tbench CLI in-process, like the console script does."""
    from tuning_bench.cli.main import cli

    return runner.invoke(cli, list(args), catch_exceptions=False)
