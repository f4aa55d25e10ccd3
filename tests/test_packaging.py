"""The project as users get it: a wheel that works outside the repo, and an installable third-party plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

BUILTIN_METHODS = {"zero-shot", "few-shot", "hard-prompt", "prompt", "prefix", "ptuning", "lora", "ia3", "finetune"}
BUILTIN_TASKS = {"product-descriptions", "review-sentiment", "attribute-extraction"}


def _pip(*args: str, cwd: Path | None = None) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args], check=True, cwd=cwd,
                   stdout=subprocess.DEVNULL)


def _tbench_json(command: str, target: Path, cwd: Path, env_extra: dict | None = None) -> list[dict]:
    # Only the target folder and the environment's dependencies are importable: not the repository.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TBENCH_PLUGINS")}
    env.update({"PYTHONPATH": str(target), "PYTHONSAFEPATH": "1", **(env_extra or {})})
    code = ("import sys, tuning_bench; assert not tuning_bench.__file__.startswith(sys.argv[1]), tuning_bench.__file__; "
            "from tuning_bench.cli.main import main; sys.argv = ['tbench', sys.argv[2], '--json']; main()")
    result = subprocess.run([sys.executable, "-c", code, str(REPO), command], capture_output=True, text=True, env=env,
                            cwd=cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory):
    """The project's wheel, built from the repository and installed (without dependencies) into a folder."""
    build = tmp_path_factory.mktemp("build")
    _pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(build), str(REPO))
    wheels = list(build.glob("tuning_bench-*.whl"))
    assert len(wheels) == 1
    target = tmp_path_factory.mktemp("site")
    _pip("install", "--no-deps", "--target", str(target), str(wheels[0]))
    return wheels[0], target


def test_wheel_contains_plugins_tasks_and_metric_modules(installed_wheel):
    import zipfile

    wheel, _ = installed_wheel
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"tuning_bench_plugins/lora.py", "tuning_bench_plugins/model_sources.py",
            "tuning_bench_tasks/product_descriptions.py", "tuning_bench_tasks/catalog.py",
            "tuning_bench/metrics/text.py", "tuning_bench_plugins/metrics.py", "tuning_bench/report/html.py"} <= names
    assert not any(name.startswith(("tests/", "plugins/", "tasks/")) for name in names)


def test_installed_wheel_lists_methods_and_tasks_outside_the_repo(installed_wheel, tmp_path):
    _, target = installed_wheel
    methods = {row["name"] for row in _tbench_json("methods", target, cwd=tmp_path)}
    tasks = {row["name"]: row for row in _tbench_json("tasks", target, cwd=tmp_path)}
    assert BUILTIN_METHODS <= methods
    assert BUILTIN_TASKS <= set(tasks)
    assert tasks["review-sentiment"]["sizes"] == {"train": 600, "validation": 100, "test": 200}


def test_example_plugin_installs_and_its_method_is_listed(installed_wheel, tmp_path):
    _, target = installed_wheel
    _pip("install", "--no-deps", "--no-build-isolation", "--target", str(target), str(REPO / "examples" / "tbench-normtune"))
    rows = _tbench_json("methods", target, cwd=tmp_path)
    normtune = next(row for row in rows if row["name"] == "normtune")
    assert normtune["plugin"] == "normtune" and normtune["trains"]
    plugins = {row["name"]: row for row in _tbench_json("plugins", target, cwd=tmp_path)}
    assert plugins["normtune"]["version"] == "0.1.0" and plugins["normtune"]["hooks"] == ["register_methods"]
    assert plugins["normtune-metrics"]["hooks"] == ["register_metrics"]
    # the restriction variables apply to it
    blocked = _tbench_json("methods", target, cwd=tmp_path, env_extra={"TBENCH_BLOCK_PLUGINS": "normtune"})
    assert "normtune" not in {row["name"] for row in blocked}
    only_none = _tbench_json("methods", target, cwd=tmp_path, env_extra={"TBENCH_PLUGINS": ""})
    assert "normtune" not in {row["name"] for row in only_none}


def test_example_plugin_method_trains_on_the_tiny_model(tmp_path):
    """The example plugin, unchanged, through the engine (it imports only the public interface)."""
    sys.path.insert(0, str(REPO / "examples" / "tbench-normtune"))
    try:
        from tuning_bench.engine.cell import CellSpec, run_cell
        from tuning_bench.host.plugins import register_module

        register_module("tuning_bench.testing")
        register_module("tbench_normtune")
        for model, task in (("tiny-llama", "tiny-gen"), ("tiny-bert", "tiny-cls")):
            spec = CellSpec(task=task, method="normtune", seed=0, model=model, method_config={}, steps=2, batch_size=4,
                            eval_examples=2, val_examples=2, eval_batch_size=2)
            record = run_cell(spec, tmp_path / model, None)
            assert record["status"] == "ok", record["error"]
            assert 0 < record["measurements"]["trainable_params"] < record["measurements"]["total_params"]
    finally:
        sys.path.remove(str(REPO / "examples" / "tbench-normtune"))
        sys.modules.pop("tbench_normtune", None)


def test_example_plugin_metric_scores_through_compute_metrics():
    """The example's metric module: a few lines give a metric that tasks and compute_metrics can use."""
    from tuning_bench.host.plugins import load_catalog
    from tuning_bench.metrics import compute_metrics

    sys.path.insert(0, str(REPO / "examples" / "tbench-normtune"))
    try:
        metric = load_catalog(["tbench_normtune.metrics"]).metrics.get("answer_length_error")
        assert metric.higher_is_better is False and metric.plugin == "tbench_normtune.metrics"
        scores = compute_metrics(["answer_length_error"], ["a b c d", "a b"], ["a b", "a b"])
        assert scores == {"answer_length_error": 0.5}
    finally:
        sys.path.remove(str(REPO / "examples" / "tbench-normtune"))
        for name in ("tbench_normtune.metrics", "tbench_normtune"):
            sys.modules.pop(name, None)
