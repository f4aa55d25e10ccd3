"""Runs end to end on tiny models: schema, caching, resuming, failures, locks, interrupts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, TESTS

from tuning_bench.api.errors import UsageError
from tuning_bench.run.executor import InProcessExecutor, LocalExecutor
from tuning_bench.host.plugins import load_catalog
from tuning_bench.run.results import REQUIRED_CELL_KEYS, load_results, validate
from tuning_bench.run.output import OutputLock
from tuning_bench.run.runner import Interrupted, execute, plan_run
from tuning_bench.run.settings import RunSettings


def settings(tmp_path: Path, **overrides) -> RunSettings:
    values = dict(methods=["zero-shot", "lora"], tasks=["tiny-gen"], model="tiny-llama", seeds=[0, 1], steps=2,
                  batch_size=4, eval_examples=3, val_examples=2, eval_batch_size=4, out=str(tmp_path / "run"),
                  executor="in-process", samples=2)
    values.update(overrides)
    return RunSettings(**values)


class CountingExecutor(InProcessExecutor):
    def __init__(self):
        self.ran = []

    def run(self, jobs, on_event):
        for job, record in super().run(jobs, on_event):
            self.ran.append(job.spec.label)
            yield job, record


def _run(s: RunSettings, executor=None, **kwargs):
    plan = plan_run(s, load_catalog())
    return execute(plan, executor=executor or InProcessExecutor(), prepare_model=False, **kwargs), plan


def test_grid_produces_schema_valid_results_and_reports(tiny, tmp_path):
    data, plan = _run(settings(tmp_path))
    out = tmp_path / "run"
    on_disk = load_results(out)
    assert on_disk["schema_version"] == 2 and len(on_disk["cells"]) == 4
    for cell in on_disk["cells"]:
        assert set(REQUIRED_CELL_KEYS) <= set(cell)
        assert cell["status"] == "ok", cell["error"]
        assert cell["environment"]["packages"]["transformers"].startswith("5.")
    assert {(c["method"], c["seed"]) for c in on_disk["cells"]} == {("zero-shot", 0), ("zero-shot", 1), ("lora", 0), ("lora", 1)}
    assert on_disk["run"]["seeds"] == [0, 1] and on_disk["environment"]["torch_threads"] >= 1
    csv_lines = (out / "results.csv").read_text().strip().splitlines()
    assert len(csv_lines) == 5 and csv_lines[0].startswith("task,method,seed")
    for name in ("report.md", "report.html"):
        assert (out / name).stat().st_size > 1000
    # seeds differ: the sampled batches differ, so the trained loss curves differ
    lora = [c for c in on_disk["cells"] if c["method"] == "lora"]
    assert lora[0]["curves"]["train_loss"] != lora[1]["curves"]["train_loss"]
    # retention's base side is the same for both seeds: the first cell measures it, the second reads it
    assert [c["measurements"]["retention"]["base_reused"] for c in lora] == [False, True]
    assert len(list((out / ".cache").glob("retention-base-*.json"))) == 1


def test_second_invocation_runs_nothing_and_force_reruns(tiny, tmp_path):
    _run(settings(tmp_path))
    counting = CountingExecutor()
    data, _ = _run(settings(tmp_path), executor=counting)
    assert counting.ran == [] and data["run"]["cells_cached"] == 4 and all(c["cached"] for c in data["cells"])
    counting = CountingExecutor()
    _run(settings(tmp_path), executor=counting, force=True)
    assert len(counting.ran) == 4


def test_a_changed_setting_only_reruns_affected_cells(tiny, tmp_path):
    _run(settings(tmp_path))
    counting = CountingExecutor()
    _run(settings(tmp_path, options={"lora": {"r": 4}}), executor=counting)
    assert sorted(counting.ran) == ["tiny-gen/lora/seed 0", "tiny-gen/lora/seed 1"]


class InterruptAfter(InProcessExecutor):
    def __init__(self, cells: int):
        self.cells = cells

    def run(self, jobs, on_event):
        for index, item in enumerate(super().run(jobs, on_event)):
            yield item
            if index + 1 == self.cells:
                raise KeyboardInterrupt


def test_interrupted_run_keeps_finished_cells_and_resumes_the_rest(tiny, tmp_path):
    with pytest.raises(Interrupted) as info:
        _run(settings(tmp_path), executor=InterruptAfter(1))
    assert info.value.finished == 1 and info.value.total == 4
    partial = load_results(tmp_path / "run")
    assert partial["interrupted"] and len(partial["cells"]) == 1 and len(partial["pending"]) == 3
    counting = CountingExecutor()
    data, _ = _run(settings(tmp_path), executor=counting)
    assert len(counting.ran) == 3 and len(data["cells"]) == 4 and not data["interrupted"]


def test_a_failing_cell_is_recorded_while_the_others_finish(tiny, tmp_path):
    data, _ = _run(settings(tmp_path, methods=["fake-crash", "fake-nan", "lora"], seeds=[0]))
    status = {c["method"]: (c["status"], c["error"]) for c in data["cells"]}
    assert status["fake-crash"] == ("failed", "RuntimeError: deliberate failure in adapt")
    assert status["fake-nan"][0] == "failed" and "loss became nan" in status["fake-nan"][1]
    assert status["lora"] == ("ok", None)


def test_cuda_out_of_memory_fails_only_its_cell_with_the_reason(tiny, tmp_path):
    data, _ = _run(settings(tmp_path, methods=["fake-oom", "zero-shot"], seeds=[0]))
    status = {c["method"]: (c["status"], c["error"]) for c in data["cells"]}
    assert status["fake-oom"][0] == "failed" and status["fake-oom"][1].startswith("CUDA out of memory")
    assert "smaller --batch-size" in status["fake-oom"][1] and status["zero-shot"][0] == "ok"


def test_local_executor_isolates_a_killed_cell(tiny, tmp_path):
    data, _ = _run(settings(tmp_path, methods=["fake-killed", "lora"], seeds=[0], executor="local"),
                   executor=LocalExecutor())
    status = {c["method"]: (c["status"], c["error"]) for c in data["cells"]}
    assert status["fake-killed"] == ("failed", "cell process was killed by SIGKILL (the system's out-of-memory killer sends this)")
    assert status["lora"][0] == "ok"
    lora = next(c for c in data["cells"] if c["method"] == "lora")
    assert lora["measurements"]["memory"]["cpu_baseline_rss_bytes"] > 0


def test_output_directory_in_use_is_refused(tiny, tmp_path):
    out = tmp_path / "run"
    with OutputLock(out):
        with pytest.raises(UsageError, match=f"output directory {out} is in use by another tbench run"):
            _run(settings(tmp_path))
    assert not (out / "results.json").exists()


def test_unwritable_output_directory_is_a_clear_error(tiny, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(UsageError, match="cannot write to output directory .*; choose another with --out"):
        _run(settings(tmp_path, out=str(blocker / "run")))


def test_sweep_tries_the_same_number_of_rates_and_selects_by_validation(tiny, tmp_path):
    data, _ = _run(settings(tmp_path, methods=["zero-shot", "lora", "prompt"], seeds=[0], sweep="lr"))
    trials = {}
    for cell in data["cells"]:
        trials.setdefault(cell["method"], []).append(cell)
    assert len(trials["zero-shot"]) == 1 and len(trials["lora"]) == 3 and len(trials["prompt"]) == 3
    base = load_catalog().methods.get("lora").option("learning_rate").default
    expected = sorted(float(f"{base * factor:.3g}") for factor in (1 / 3, 1, 3))
    assert sorted(c["method_config"]["learning_rate"] for c in trials["lora"]) == expected
    for summary in data["sweep"]:
        chosen = [c for c in trials[summary["method"]] if c.get("selected")]
        assert len(chosen) == 1 and chosen[0]["trial"] == summary["chosen"]
        if summary["method"] != "zero-shot":
            best = min(summary["tried"], key=lambda t: t["mean_val_loss"])
            assert best["trial"] == summary["chosen"]
    validate(data, "sweep")


def _tbench(*args, env_extra=None, **kwargs):
    env = {**os.environ, "TBENCH_PLUGIN_MODULES": "tuning_bench.testing,fake_plugins",
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]), **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "tuning_bench", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def _sigint_as_from_a_terminal() -> None:
    """A test run started in the background (as CI may start it) ignores SIGINT, and children inherit
    that; a command typed at a terminal gets the default disposition, under which Ctrl-C interrupts."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_run_keeps_finished_cells_and_next_run_resumes(tmp_path, signum):
    out = tmp_path / "run"
    args = ["run", "--model", "tiny-llama", "--tasks", "tiny-gen", "--methods", "zero-shot,fake-slow", "--steps", "1",
            "--eval-examples", "2", "--out", str(out)]
    process = _tbench(*args, "--set", "fake-slow.seconds=60", preexec_fn=_sigint_as_from_a_terminal)
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / "cells").glob("*.json")) if out.exists() else time.time() < deadline:
        time.sleep(0.5)
    time.sleep(2)  # the slow cell is running now
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "1 of 2 cells are finished and saved" in stderr and "run the same command again to resume" in stderr
    partial = load_results(out)
    assert [c["method"] for c in partial["cells"]] == ["zero-shot"] and partial["interrupted"]
    resumed = _tbench(*args, "--set", "fake-slow.seconds=0")
    stdout, stderr = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, stderr
    assert "1 of 2 cells already finished" in stderr
    assert [c["method"] for c in load_results(out)["cells"]] == ["zero-shot", "fake-slow"]


def test_cli_exit_code_is_1_when_a_cell_fails(tmp_path):
    process = _tbench("run", "--model", "tiny-llama", "--tasks", "tiny-gen", "--methods", "zero-shot,fake-crash",
                      "--steps", "1", "--eval-examples", "2", "--out", str(tmp_path / "run"), "--executor", "in-process")
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 1, stderr
    assert "failed: tiny-gen/fake-crash/seed 0: RuntimeError: deliberate failure in adapt" in stderr
    assert "zero-shot" in stdout  # the comparison table is still printed


def test_report_rebuilds_identical_reports_from_results_json(tiny, tmp_path, cli_runner):
    _run(settings(tmp_path, seeds=[0]))
    out = tmp_path / "run"
    before = {name: (out / name).read_bytes() for name in ("report.md", "report.html", "results.csv")}
    for name in before:
        (out / name).unlink()
    from tuning_bench.cli.main import cli

    result = cli_runner.invoke(cli, ["report", str(out)])
    assert result.exit_code == 0, result.output
    assert {name: (out / name).read_bytes() for name in before} == before
    html = before["report.html"].decode()
    assert "http://" not in html and "https://" not in html and "data:image/png;base64," in html


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda text: text[: len(text) // 2], "invalid JSON at line"),
        (lambda text: text.replace('"status": "ok"', '"status": "bogus"', 1), "status is 'bogus'; expected one of"),
        (lambda text: json.dumps({**json.loads(text), "schema_version": 99}), "schema_version 99 is not supported"),
        (lambda text: "[]", "expected a JSON object at the top level"),
    ],
)
def test_report_on_a_damaged_results_file_says_what_is_wrong(tiny, tmp_path, cli_runner, damage, message):
    _run(settings(tmp_path, seeds=[0], methods=["zero-shot"]))
    path = tmp_path / "run" / "results.json"
    path.write_text(damage(path.read_text()))
    from tuning_bench.cli.main import cli

    result = cli_runner.invoke(cli, ["report", str(tmp_path / "run")])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_compare_shows_changed_quality(tiny, tmp_path, cli_runner):
    _run(settings(tmp_path, seeds=[0], out=str(tmp_path / "a")))
    _run(settings(tmp_path, seeds=[0], steps=3, out=str(tmp_path / "b")))
    from tuning_bench.cli.main import cli

    result = cli_runner.invoke(cli, ["compare", str(tmp_path / "a"), str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert "steps" in result.output and "lora" in result.output


def test_results_json_is_written_atomically(tmp_path, monkeypatch):
    from tuning_bench import files
    from tuning_bench.run import results

    path = tmp_path / "results.json"
    results.write_json(path, {"a": 1})

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", fail)
    with pytest.raises(OSError):
        results.write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no partial temporary left behind


def test_generate_uses_a_runs_trained_state(tiny, tmp_path):
    _run(settings(tmp_path, seeds=[0], methods=["prompt"]))
    process = _tbench("generate", str(tmp_path / "run"), "--method", "prompt", "red mug", "blue lamp")
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert "red mug" in stdout and "blue lamp" in stdout
    bad = _tbench("generate", str(tmp_path / "run"), "--method", "lora", "red mug")
    _, stderr = bad.communicate(timeout=120)
    assert bad.returncode == 2 and "this run has no cell for method 'lora'; it has: prompt" in stderr


def test_repo_root_is_the_project():
    assert (REPO / "pyproject.toml").exists()


def test_cell_command_runs_one_cell_from_a_spec_file(tmp_path):
    spec = {"task": "tiny-gen", "method": "lora", "seed": 0, "model": "tiny-llama", "method_config": {}, "steps": 2,
            "batch_size": 4, "eval_examples": 2, "val_examples": 2, "eval_batch_size": 2}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    process = _tbench("cell", str(tmp_path / "spec.json"), str(tmp_path / "cell"))
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    record = json.loads(stdout.strip().splitlines()[-1])
    assert record["status"] == "ok" and record["config"]["method"] == "lora" and record["measurements"]["steps"] == 2
    (tmp_path / "bad.json").write_text("{}")
    bad = _tbench("cell", str(tmp_path / "bad.json"), str(tmp_path / "cell2"))
    _, stderr = bad.communicate(timeout=60)
    assert bad.returncode == 2 and "not a cell spec" in stderr
