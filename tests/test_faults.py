"""Faults around a run: the parent killed mid-cell, cached records that lie, failed cells, full disks,
a user's files in --out. Each test injects the fault and checks what the next run does."""

from __future__ import annotations

import errno
import json
import os
import signal
import time
from pathlib import Path

import pytest
from test_runner import CountingExecutor, _run, _tbench, settings

from tuning_bench.api.errors import UsageError
from tuning_bench.run.results import load_results
from tuning_bench.run.output import OUT_OVERWRITE_FLAG, check_output_folder


def _children(pid: int) -> set[int]:
    """Every live descendant of ``pid``, read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie has ended; only its exit status waits to be collected)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process tree from /proc (Linux)")
def test_cell_processes_die_with_a_killed_parent_and_the_next_run_is_clean(tmp_path):
    out = tmp_path / "run"
    args = ["run", "--model", "tiny-llama", "--tasks", "tiny-gen", "--methods", "fake-slow", "--steps", "1",
            "--eval-examples", "2", "--out", str(out)]
    parent = _tbench(*args, "--set", "fake-slow.seconds=120", start_new_session=True)
    cell_pid = None
    deadline = time.time() + 120
    while time.time() < deadline and cell_pid is None:
        for lock in out.glob("cells/*/.tbench-cell.lock"):
            text = lock.read_text().strip()
            cell_pid = int(text) if text else None
        time.sleep(0.3)
    assert cell_pid is not None, parent.communicate(timeout=5)
    descendants = _children(parent.pid)
    assert cell_pid in descendants  # the cell runs in a process of its own, below tbench (via the fork server)
    os.kill(parent.pid, signal.SIGKILL)  # no handler runs: only the children's own watch can end them
    parent.communicate(timeout=30)
    deadline = time.time() + 10
    while time.time() < deadline and any(_running(pid) for pid in descendants):
        time.sleep(0.2)
    survivors = [pid for pid in descendants if _running(pid)]
    for pid in survivors:  # do not leave them behind when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"processes outlived the killed tbench: {survivors}"
    resumed = _tbench(*args, "--set", "fake-slow.seconds=0")
    stdout, stderr = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, stderr
    cells = load_results(out)["cells"]
    assert [(c["method"], c["status"]) for c in cells] == [("fake-slow", "ok")]


def test_a_survivor_holding_a_cell_directory_is_not_shared(tmp_path):
    from tuning_bench.run.cellprocess import lock_cell_dir

    held = lock_cell_dir(tmp_path / "cell")
    try:
        with pytest.raises(RuntimeError, match=rf"cell directory .*cell is in use by another process \(pid {os.getpid()}\)"):
            lock_cell_dir(tmp_path / "cell", wait=0.5)
    finally:
        held.close()
    lock_cell_dir(tmp_path / "cell", wait=0).close()  # free once the holder is gone


def _cell_files(out: Path) -> dict[str, Path]:
    """method -> its cached record file."""
    return {json.loads(p.read_text())["method"]: p for p in (out / "cells").glob("*.json")}


@pytest.mark.parametrize(
    "damage",
    [
        lambda record, other: {"status": "ok", "method": "zero-shot"},
        lambda record, other: other,  # another cell's record copied over this key
        lambda record, other: {**record, "key": other["key"]},
        lambda record, other: {**record, "seed": 7},
        lambda record, other: {**record, "config": {**record["config"], "steps": 99}},
        lambda record, other: {k: v for k, v in record.items() if k != "measurements"},
        lambda record, other: [record],
    ],
    ids=["bogus", "copied", "wrong-key", "wrong-seed", "wrong-config", "not-schema-valid", "not-an-object"],
)
def test_a_cached_record_that_does_not_match_its_cell_is_run_again_with_a_warning(tiny, tmp_path, damage, capsys):
    s = settings(tmp_path, seeds=[0])
    _run(s)
    files = _cell_files(tmp_path / "run")
    record, other = (json.loads(files[m].read_text()) for m in ("lora", "zero-shot"))
    files["lora"].write_text(json.dumps(damage(record, other)))
    capsys.readouterr()
    counting = CountingExecutor()
    data, _ = _run(s, executor=counting)
    assert counting.ran == ["tiny-gen/lora/seed 0"]
    err = capsys.readouterr().err
    assert f"warning: {files['lora']}" in err and "the cell runs again" in err, err
    assert sorted(c["method"] for c in data["cells"]) == ["lora", "zero-shot"]
    assert all(c["status"] == "ok" for c in data["cells"])


def test_the_warning_names_the_record_file(tiny, tmp_path, capsys):
    s = settings(tmp_path, seeds=[0], methods=["zero-shot"])
    _run(s)
    path = next((tmp_path / "run" / "cells").glob("*.json"))
    path.write_text(json.dumps({"status": "ok", "method": "zero-shot"}))
    capsys.readouterr()
    _run(s)
    err = capsys.readouterr().err
    assert f"warning: {path}" in err and "the cell runs again" in err


def test_failed_cells_are_retried_and_successful_ones_reused(tiny, tmp_path):
    s = settings(tmp_path, seeds=[0], methods=["fake-crash", "zero-shot"])
    data, _ = _run(s)
    assert {c["method"]: c["status"] for c in data["cells"]} == {"fake-crash": "failed", "zero-shot": "ok"}
    counting = CountingExecutor()
    data, _ = _run(s, executor=counting)
    assert counting.ran == ["tiny-gen/fake-crash/seed 0"]
    assert {c["method"]: c["cached"] for c in data["cells"]} == {"fake-crash": False, "zero-shot": True}


def test_a_full_disk_mid_run_is_one_line_keeps_finished_cells_and_leaves_no_temporary(tiny, tmp_path, monkeypatch):
    from tuning_bench import files

    real_replace = os.replace
    calls = {"n": 0}

    out = tmp_path / "run"

    def fill_up(source, target):
        if Path(target).parent in (out, out / "cells"):  # the run's own files, not the cell's token cache
            calls["n"] += 1
            if calls["n"] > 1:  # the first cell's record is saved, then the disk is full
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_replace(source, target)

    monkeypatch.setattr(files.os, "replace", fill_up)
    s = settings(tmp_path, seeds=[0])
    with pytest.raises(UsageError, match=r"cannot write .*results\.json \(No space left on device\); free space there "
                                         r"or choose another --out \(1 finished cells are saved"):
        _run(s)
    assert not [p for p in out.rglob("*.tmp")], "temporary files left behind"
    monkeypatch.setattr(files.os, "replace", real_replace)
    counting = CountingExecutor()
    data, _ = _run(s, executor=counting)
    assert len(counting.ran) == 1 and len(data["cells"]) == 2


def test_a_full_disk_in_the_cli_is_one_line_without_traceback(tiny, tmp_path, cli_runner, monkeypatch):
    from tuning_bench import files

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", full)
    from tuning_bench.cli.main import cli

    result = cli_runner.invoke(cli, ["run", "--model", "tiny-llama", "--tasks", "tiny-gen", "--methods", "zero-shot",
                                     "--steps", "1", "--eval-examples", "2", "--executor", "in-process",
                                     "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "No space left on device" in result.output
    assert not list((tmp_path / "run").rglob("*.tmp"))


def test_a_non_empty_folder_that_is_not_a_run_is_refused_unless_asked(tiny, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "report.md").write_text("my notes")
    with pytest.raises(UsageError, match=f"output directory {out} is not empty \\(report.md\\) and is not a tbench "
                                         f"run; choose an empty or new --out, or pass {OUT_OVERWRITE_FLAG}"):
        _run(settings(tmp_path, seeds=[0], methods=["zero-shot"], out=str(out)))
    assert (out / "report.md").read_text() == "my notes" and sorted(p.name for p in out.iterdir()) == ["report.md"]
    plan_data, _ = _run(settings(tmp_path, seeds=[0], methods=["zero-shot"], out=str(out)), out_overwrite=True)
    assert (out / "results.json").exists()
    check_output_folder(out)  # now a tbench run: accepted without the flag
    empty = tmp_path / "empty"
    empty.mkdir()
    check_output_folder(empty)


def test_the_out_overwrite_flag_in_the_cli(tmp_path, cli_runner):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "results.csv").write_text("a,b\n")
    from tuning_bench.cli.main import cli

    result = cli_runner.invoke(cli, ["run", "--methods", "zero-shot", "--out", str(out)])
    assert result.exit_code == 2 and "--out-overwrite" in result.output and "Traceback" not in result.output
    assert (out / "results.csv").read_text() == "a,b\n"


def test_results_csv_neutralises_formulas(tiny, tmp_path):
    from tuning_bench.run.results import csv_text

    cell = {"task": "=HYPERLINK(\"x\")", "method": "+cmd", "seed": 0, "status": "failed", "error": "@SUM(A1)",
            "trial": "-1+1", "measurements": {"final_val_loss": -0.5}}
    line = csv_text({"cells": [cell]}).splitlines()[1]
    assert line.startswith("\"'=HYPERLINK(\"\"x\"\")\",'+cmd,0,'-1+1,failed,'@SUM(A1)"), line
    assert ",-0.5," in line  # numbers stay numbers
