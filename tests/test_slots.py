"""Cells side by side: --devices and --jobs, the slot scheduler, and runs through it (issue 15, item 4).

The scheduler is tested with stub cell runners (a barrier proves that cells overlap; no timed
assertion); runs through real cell processes check that parallel results and cache equal sequential
ones. Tests that need CUDA devices skip without them.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from conftest import run_tbench

from tuning_bench.api.errors import UsageError
from tuning_bench.engine.cell import CellSpec
from tuning_bench.host.plugins import load_catalog
from tuning_bench.run.executor import CellJob, LocalExecutor
from tuning_bench.run.results import load_results
from tuning_bench.run.cellcache import cell_key as _cell_key
from tuning_bench.run.runner import Interrupted, execute, plan_run
from tuning_bench.run.settings import RunSettings
from tuning_bench.run.slots import Slot, available_cores, cuda_device_count, plan_slots, run_in_slots

WAIT = 60  # seconds a stub waits for its partner before the test fails (a hang guard, not a timing)


def _job(name: str, tmp_path: Path) -> CellJob:
    spec = CellSpec(task="t", method=name, seed=0, model="m", method_config={}, steps=1)
    return CellJob(spec, name, tmp_path / name, None)


def _ok(job: CellJob, slot: Slot) -> dict:
    return {"task": "t", "method": job.spec.method, "seed": 0, "status": "ok", "device": slot.device}


# --- Slots from the flags ----------------------------------------------------------------------------

def test_jobs_split_the_cores_into_equal_shares_and_a_remainder_stays_idle():
    slots = plan_slots([], 2, "cpu", 0, "local", cores=[0, 1, 2])
    assert slots == [Slot("cpu", (0,)), Slot("cpu", (1,))]
    assert plan_slots([], 2, "cpu", 2, "local", cores=[4, 5, 6, 7]) == [Slot("cpu", (4, 5)), Slot("cpu", (6, 7))]


def test_one_job_is_one_unpinned_slot_on_the_runs_device():
    assert plan_slots([], 1, "cpu", 0, "local", cores=[0, 1]) == [Slot("cpu")]
    assert plan_slots([], 1, "cuda:1", 0, "in-process", cores=[0, 1]) == [Slot("cuda:1")]


def test_devices_become_one_slot_each():
    assert plan_slots(["cuda:0", "cuda:1"], 1, "auto", 0, "local", cuda_count=2) == [Slot("cuda:0"), Slot("cuda:1")]


@pytest.mark.parametrize(
    ("devices", "jobs", "device", "threads", "executor", "cuda_count", "expected"),
    [
        (["cuda:0", "cuda:2"], 1, "auto", 0, "local", 2, "--devices cuda:2: this machine has 2 CUDA device(s), cuda:0 to cuda:1; list only those"),
        (["cuda:0"], 1, "auto", 0, "local", 0, "--devices cuda:0: no CUDA device is available here; leave out --devices"),
        (["cpu", "cuda:0"], 1, "auto", 0, "local", 1, "mixes cpu and cuda"),
        (["cpu", "cpu"], 1, "auto", 0, "local", 0, "to run cells side by side on the CPU use --jobs N"),
        (["cuda"], 1, "auto", 0, "local", 1, "--devices cuda: expected CUDA devices with their index, e.g. --devices cuda:0,cuda:1"),
        (["gpu0"], 1, "auto", 0, "local", 1, "--devices gpu0: expected CUDA devices with their index"),
        (["cuda:0"], 1, "cuda:0", 0, "local", 1, "--devices and --device cuda:0 both given; give one of them"),
        (["cuda:0", "cuda:1"], 2, "auto", 0, "local", 2,
         "4 cells at a time on cuda:0, cuda:1: this machine has 2 CPU core(s) available; use --jobs 1 or fewer"),
        (["cuda:0", "cuda:1", "cuda:2"], 1, "auto", 0, "local", 3, None),  # one slot per device: not pinned, no limit
        (["cuda:0"], 1, "auto", 0, "in-process", 1, "--devices needs --executor local"),
        ([], 3, "cpu", 0, "local", 0, "--jobs 3: this machine has 2 CPU core(s) available; use --jobs 2 or fewer"),
        ([], 2, "cpu", 2, "local", 0, "--threads 2 with --jobs 2: each cell gets 1 of the 2 cores; use --threads 1 or fewer"),
        ([], 2, "cpu", 0, "in-process", 0, "--jobs 2 needs --executor local"),
        ([], 3, "cuda", 0, "local", 1, "--jobs 3 on cuda:0: this machine has 2 CPU core(s) available; use --jobs 2 or fewer"),
        ([], 2, "cuda:0", 2, "local", 1, "--threads 2 with --jobs 2 on cuda:0: each cell gets 1 of the 2 cores; use --threads 1"),
        ([], 2, "cuda", 0, "in-process", 1, "--jobs 2 needs --executor local"),
        ([], 2, "cuda:1", 0, "local", 1, "--device cuda:1 with --jobs 2: this machine has 1 CUDA device(s); use --device cuda"),
        (["cuda:0", "cuda:1"], 2, "auto", 0, "in-process", 2, "--devices needs --executor local"),
        (["cuda:0", "cuda:1", "cuda:2"], 2, "auto", 0, "local", 3,
         "6 cells at a time on cuda:0, cuda:1, cuda:2: this machine has 2 CPU core(s) available, fewer than the devices"),
    ],
)
def test_bad_slot_flags_are_one_clear_line(devices, jobs, device, threads, executor, cuda_count, expected):
    if expected is None:
        assert len(plan_slots(devices, jobs, device, threads, executor, cores=[0, 1], cuda_count=cuda_count)) == len(devices)
        return
    with pytest.raises(UsageError) as info:
        plan_slots(devices, jobs, device, threads, executor, cores=[0, 1], cuda_count=cuda_count)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_jobs_on_cuda_put_n_slots_on_the_runs_device_each_with_its_own_cores():
    slots = plan_slots([], 2, "cuda", 0, "local", cores=[0, 1, 2, 3, 4], cuda_count=1)
    assert slots == [Slot("cuda:0", (0, 1)), Slot("cuda:0", (2, 3))]  # "cuda" is named; core 4 stays idle
    assert len(set(slots)) == 2  # distinct: each keys a process of its own in the executor
    assert slots[0].label == "cuda:0 (cores 0,1)"
    assert plan_slots([], 4, "cuda:1", 1, "local", cores=range(8), cuda_count=2) == [
        Slot("cuda:1", (0, 1)), Slot("cuda:1", (2, 3)), Slot("cuda:1", (4, 5)), Slot("cuda:1", (6, 7))]
    # one job stays what it was: the run's device, unpinned
    assert plan_slots([], 1, "cuda", 0, "local", cores=[0, 1], cuda_count=1) == [Slot("cuda")]


def test_jobs_with_devices_put_n_slots_on_each_device_and_split_the_cores_between_all():
    slots = plan_slots(["cuda:0", "cuda:1"], 2, "auto", 2, "local", cores=range(9), cuda_count=2)
    # alternating, so the first cells spread over the devices; 9 cores / 4 slots = 2 each, one idle
    assert slots == [Slot("cuda:0", (0, 1)), Slot("cuda:1", (2, 3)), Slot("cuda:0", (4, 5)), Slot("cuda:1", (6, 7))]
    with pytest.raises(UsageError, match=r"--threads 3 with --jobs 2 on cuda:0, cuda:1: each cell gets 2 of the 9 cores"):
        plan_slots(["cuda:0", "cuda:1"], 2, "auto", 3, "local", cores=range(9), cuda_count=2)


def test_jobs_on_the_cpu_keep_their_meaning_whatever_cuda_there_is():
    assert plan_slots([], 2, "cpu", 0, "local", cores=[0, 1, 2, 3], cuda_count=1) == [
        Slot("cpu", (0, 1)), Slot("cpu", (2, 3))]


def _error_line(result) -> str:
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert result.exit_code == 2 and len(errors) == 1 and "Traceback" not in result.output, result.output
    return errors[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--jobs", "0"], "--jobs must be at least 1 (got 0)"),
        (["--jobs", "999"], "--jobs 999: this machine has"),
        (["--devices", "cpu,cuda:0"], "mixes cpu and cuda"),
        (["--device", "cpu", "--devices", "cuda:0"], "--devices and --device cpu both given"),
    ],
)
def test_bad_slot_flags_in_the_cli_fail_before_any_work(tiny, cli_runner, tmp_path, args, expected):
    result = run_tbench(cli_runner, "run", "--model", "tiny-llama", "--tasks", "tiny-gen", "--methods", "zero-shot",
                        *args, "--out", str(tmp_path / "out"))
    assert expected in _error_line(result)
    assert not (tmp_path / "out").exists()


class _Planned(Exception):
    """Raised by a stub ``execute``: the CLI accepted the flags and planned the run."""

    def __init__(self, plan):
        self.plan = plan


def _fake_cuda(monkeypatch, count: int) -> None:
    """This machine as if it had ``count`` CUDA devices, for planning only (nothing may run on them)."""
    import torch

    from tuning_bench.run import runner

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)

    def planned_only(plan, **kwargs):
        raise _Planned(plan)

    monkeypatch.setattr(runner, "execute", planned_only)


def test_jobs_on_cuda_are_accepted_in_the_cli_where_cuda_exists(tiny, cli_runner, tmp_path, monkeypatch):
    if len(available_cores()) < 2:
        pytest.skip("needs 2 CPU cores")
    _fake_cuda(monkeypatch, 1)
    with pytest.raises(_Planned) as info:
        run_tbench(cli_runner, "run", "--model", "tiny-llama", "--tasks", "tiny-gen", "--methods", "zero-shot",
                   "--device", "cuda", "--jobs", "2", "--out", str(tmp_path / "out"))
    slots = info.value.plan.slots
    share = len(available_cores()) // 2
    assert [s.device for s in slots] == ["cuda:0", "cuda:0"] and [len(s.cpus) for s in slots] == [share, share]
    assert not set(slots[0].cpus) & set(slots[1].cpus)


def test_jobs_on_cuda_are_refused_in_the_cli_where_there_is_none(tiny, cli_runner, tmp_path):
    if cuda_device_count():
        pytest.skip("a CUDA device is present")
    result = run_tbench(cli_runner, "run", "--model", "tiny-llama", "--tasks", "tiny-gen", "--device", "cuda",
                        "--jobs", "2", "--out", str(tmp_path / "out"))
    assert "--device cuda: no CUDA device is available here" in _error_line(result)


def test_too_many_jobs_on_cuda_are_one_line_in_the_cli(tiny, cli_runner, tmp_path, monkeypatch):
    cores = len(available_cores())
    if cores < 2:
        pytest.skip("needs 2 CPU cores")
    _fake_cuda(monkeypatch, 2)
    result = run_tbench(cli_runner, "run", "--model", "tiny-llama", "--tasks", "tiny-gen", "--devices", "cuda:0,cuda:1",
                        "--jobs", str(cores), "--out", str(tmp_path / "out"))
    assert f"{2 * cores} cells at a time on cuda:0, cuda:1: this machine has {cores} CPU core(s)" in _error_line(result)
    assert not (tmp_path / "out").exists()


def test_devices_without_cuda_are_refused_in_the_cli(tiny, cli_runner, tmp_path):
    if cuda_device_count():
        pytest.skip("a CUDA device is present")
    result = run_tbench(cli_runner, "run", "--model", "tiny-llama", "--tasks", "tiny-gen", "--devices", "cuda:0",
                        "--out", str(tmp_path / "out"))
    assert "--devices cuda:0: no CUDA device is available here" in _error_line(result)


# --- The scheduler, with stub cells -------------------------------------------------------------------

def test_cells_on_different_slots_really_overlap(tmp_path):
    barrier = threading.Barrier(2, timeout=WAIT)  # passes only when two cells run at the same time
    running, most = [0], [0]
    lock = threading.Lock()

    def run_one(job, slot, emit, stop):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        emit({"event": "phase", "phase": "train"})
        barrier.wait()
        with lock:
            running[0] -= 1
        return _ok(job, slot)

    jobs = [_job(f"m{i}", tmp_path) for i in range(4)]
    events = []
    results = list(run_in_slots(jobs, [Slot("cuda:0"), Slot("cuda:1")], run_one, lambda j, e: events.append((j.key, e))))
    assert sorted(job.key for job, _ in results) == ["m0", "m1", "m2", "m3"] and most[0] == 2
    starts = [e for _, e in events if e["event"] == "start"]
    assert len(starts) == 4 and {e["device"] for e in starts} == {"cuda:0", "cuda:1"}
    # each cell's start comes before its own events, on the caller's thread
    for key in ("m0", "m1", "m2", "m3"):
        mine = [e["event"] for k, e in events if k == key]
        assert mine == ["start", "phase"]
    assert {record["device"] for _, record in results} == {"cuda:0", "cuda:1"}


def test_one_slot_runs_cells_one_at_a_time_in_plan_order(tmp_path):
    running, most, order = [0], [0], []

    def run_one(job, slot, emit, stop):
        running[0] += 1
        most[0] = max(most[0], running[0])
        order.append(job.key)
        running[0] -= 1
        return _ok(job, slot)

    jobs = [_job(f"m{i}", tmp_path) for i in range(3)]
    assert [job.key for job, _ in run_in_slots(jobs, [Slot("cpu")], run_one, lambda j, e: None)] == ["m0", "m1", "m2"]
    assert most[0] == 1 and order == ["m0", "m1", "m2"]


def test_a_failing_cell_in_one_slot_does_not_stop_the_others(tmp_path):
    def run_one(job, slot, emit, stop):
        if job.key == "m1":
            raise RuntimeError("slot lost its device")
        return _ok(job, slot)

    jobs = [_job(f"m{i}", tmp_path) for i in range(5)]
    results = dict((job.key, record) for job, record in
                   run_in_slots(jobs, [Slot("cuda:0"), Slot("cuda:1")], run_one, lambda j, e: None))
    assert len(results) == 5
    assert results["m1"]["status"] == "failed" and results["m1"]["error"] == "RuntimeError: slot lost its device"
    assert results["m1"]["device"] in ("cuda:0", "cuda:1")
    assert all(results[k]["status"] == "ok" for k in ("m0", "m2", "m3", "m4"))


def test_closing_the_scheduler_stops_running_cells_and_starts_no_more(tmp_path):
    started, stopped = [], []

    def run_one(job, slot, emit, stop):
        started.append(job.key)
        if job.key == "m0":
            return _ok(job, slot)
        assert stop.wait(WAIT), "the scheduler never asked this cell to stop"
        stopped.append(job.key)
        return job.failed("stopped", slot.device)

    jobs = [_job(f"m{i}", tmp_path) for i in range(4)]
    results = run_in_slots(jobs, [Slot("cuda:0"), Slot("cuda:1")], run_one, lambda j, e: None)
    first_job, first = next(results)
    assert first_job.key == "m0" and first["status"] == "ok"
    results.close()  # what the runner does on Ctrl-C
    assert stopped and set(stopped) == set(started) - {"m0"}
    # Each slot holds one waiting cell (the one that ran m0 may have taken m2); none starts after the stop.
    assert "m1" in started and "m3" not in started


# --- Runs through real cell processes ----------------------------------------------------------------

def _settings(tmp_path: Path, out: str, **overrides) -> RunSettings:
    values = dict(methods=["zero-shot", "lora"], tasks=["tiny-gen"], model="tiny-llama", seeds=[0, 1], steps=2,
                  batch_size=4, eval_examples=3, val_examples=2, eval_batch_size=4, out=str(tmp_path / out),
                  executor="local", samples=2, threads=1, latency=False)
    values.update(overrides)
    return RunSettings(**values)


def _two_cpu_slots() -> list[Slot]:
    cores = available_cores()
    return [Slot("cpu", (cores[0],)), Slot("cpu", (cores[-1],))]


def _comparable(cell: dict) -> dict:
    return {"key": cell["key"], "status": cell["status"], "quality": cell["quality"],
            "train_loss": cell["curves"]["train_loss"], "predictions": cell["predictions"]}


class CountingLocal(LocalExecutor):
    def __init__(self, slots=None):
        super().__init__(slots)
        self.ran: list[str] = []

    def run(self, jobs, on_event):
        for job, record in super().run(jobs, on_event):
            self.ran.append(job.spec.label)
            yield job, record


def test_cells_in_two_cpu_slots_give_the_results_and_cache_of_a_sequential_run(tiny, tmp_path):
    parallel = execute(plan_run(_settings(tmp_path, "parallel"), load_catalog()), executor=LocalExecutor(_two_cpu_slots()),
                       prepare_model=False)
    sequential = execute(plan_run(_settings(tmp_path, "sequential"), load_catalog()), executor=LocalExecutor(),
                         prepare_model=False)
    assert [c["status"] for c in parallel["cells"]] == ["ok"] * 4
    assert [_comparable(c) for c in parallel["cells"]] == [_comparable(c) for c in sequential["cells"]]
    assert all(c["device"] == "cpu" and c["environment"]["torch_threads"] == 1 for c in parallel["cells"])
    assert [c["device_shared_by"] for c in parallel["cells"]] == [2] * 4
    assert [c["device_shared_by"] for c in sequential["cells"]] == [1] * 4
    assert "shared a device" not in (tmp_path / "sequential" / "report.md").read_text()
    on_disk = load_results(tmp_path / "parallel")
    assert [c["key"] for c in on_disk["cells"]] == [c["key"] for c in sequential["cells"]]  # plan order, not finish order
    # The sequential run's cache serves a parallel run of the same cells: nothing runs again.
    again = CountingLocal(_two_cpu_slots())
    data = execute(plan_run(_settings(tmp_path, "sequential"), load_catalog()), executor=again, prepare_model=False)
    assert again.ran == [] and data["run"]["cells_cached"] == 4


def test_jobs_flag_plans_pinned_slots_and_records_them(tiny, tmp_path):
    cores = available_cores()
    if len(cores) < 2:
        pytest.skip("needs 2 CPU cores")
    plan = plan_run(_settings(tmp_path, "run", jobs=2, threads=0, seeds=[0], methods=["zero-shot"]), load_catalog())
    share = len(cores) // 2
    assert [slot.cpus for slot in plan.slots] == [tuple(cores[:share]), tuple(cores[share:2 * share])]
    data = execute(plan, prepare_model=False)
    assert data["run"]["slots"] == [slot.label for slot in plan.slots]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "2 cells at a time" in report
    # each record says its device was shared, and the report says its times were taken so
    assert data["cells"][0]["device_shared_by"] == 2
    assert "taken while up to 2 cells shared a device (--jobs)" in report
    assert "taken while up to 2 cells shared a device" in (tmp_path / "run" / "report.html").read_text()
    # threads 0 means one per core of the cell's share: the pinned process sees only its cores
    assert data["cells"][0]["environment"]["torch_threads"] == share


def test_a_killed_cell_in_one_slot_leaves_the_others_to_finish(tiny, tmp_path):
    data = execute(plan_run(_settings(tmp_path, "run", methods=["fake-killed", "zero-shot", "lora"], seeds=[0]),
                            load_catalog()), executor=LocalExecutor(_two_cpu_slots()), prepare_model=False)
    status = {c["method"]: c["status"] for c in data["cells"]}
    assert status == {"fake-killed": "failed", "zero-shot": "ok", "lora": "ok"}
    killed = next(c for c in data["cells"] if c["method"] == "fake-killed")
    assert "killed by SIGKILL" in killed["error"] and killed["device"] == "cpu"


class InterruptAfterFirst(LocalExecutor):
    """Ctrl-C right after the first record; the scheduler is closed as a Ctrl-C inside it would close it."""

    def run(self, jobs, on_event):
        inner = super().run(jobs, on_event)
        try:
            for item in inner:
                yield item
                raise KeyboardInterrupt
        finally:
            inner.close()


def test_an_interrupt_keeps_finished_cells_stops_the_running_one_and_resumes(tiny, tmp_path):
    settings = _settings(tmp_path, "run", methods=["fake-slow", "zero-shot"], seeds=[0],
                         options={"fake-slow": {"seconds": 600.0}})
    with pytest.raises(Interrupted) as info:
        execute(plan_run(settings, load_catalog()), executor=InterruptAfterFirst(_two_cpu_slots()), prepare_model=False)
    assert info.value.finished == 1  # the 600 s cell was stopped, not waited for
    partial = load_results(tmp_path / "run")
    assert [c["method"] for c in partial["cells"]] == ["zero-shot"] and partial["interrupted"]
    counting = CountingLocal(_two_cpu_slots())
    settings.options = {"fake-slow": {"seconds": 0.0}}
    data = execute(plan_run(settings, load_catalog()), executor=counting, prepare_model=False)
    assert counting.ran == ["tiny-gen/fake-slow/seed 0"] and [c["status"] for c in data["cells"]] == ["ok", "ok"]


def test_ctrl_c_in_the_cli_with_two_jobs_keeps_the_finished_cell_and_stops_the_other(tmp_path):
    import signal
    import time

    from test_runner import _sigint_as_from_a_terminal, _tbench

    if len(available_cores()) < 2:
        pytest.skip("needs 2 CPU cores")
    out = tmp_path / "run"
    args = ["run", "--model", "tiny-llama", "--tasks", "tiny-gen", "--methods", "fake-slow,zero-shot", "--steps", "1",
            "--eval-examples", "2", "--jobs", "2", "--out", str(out)]
    process = _tbench(*args, "--set", "fake-slow.seconds=600", preexec_fn=_sigint_as_from_a_terminal)
    deadline = time.time() + 120
    while time.time() < deadline and not (out.exists() and list((out / "cells").glob("*.json"))):
        time.sleep(0.5)
    process.send_signal(signal.SIGINT)  # zero-shot is saved; fake-slow sleeps in the other slot
    stdout, stderr = process.communicate(timeout=60)  # a hang guard: the 600 s cell must be stopped, not awaited
    assert process.returncode == 130, stderr
    assert "1 of 2 cells are finished and saved" in stderr
    assert [c["method"] for c in load_results(out)["cells"]] == ["zero-shot"]
    resumed = _tbench(*args, "--set", "fake-slow.seconds=0")
    stdout, stderr = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, stderr
    assert [c["method"] for c in load_results(out)["cells"]] == ["fake-slow", "zero-shot"]


# --- One process per device (--cell-process) ---------------------------------------------------------

def test_auto_keeps_a_process_per_device_on_cuda_and_a_fresh_one_per_cell_on_the_cpu():
    assert LocalExecutor().reuses_process(Slot("cuda:0")) and not LocalExecutor().reuses_process(Slot("cpu"))
    assert LocalExecutor(cell_process="device").reuses_process(Slot("cpu"))
    assert not LocalExecutor(cell_process="cell").reuses_process(Slot("cuda:1"))
    with pytest.raises(ValueError, match="cell_process must be one of"):
        LocalExecutor(cell_process="node")


def test_cells_in_one_device_process_give_the_results_of_fresh_processes(tiny, tmp_path):
    kept = LocalExecutor(cell_process="device")
    shared = execute(plan_run(_settings(tmp_path, "shared", seeds=[0]), load_catalog()), executor=kept, prepare_model=False)
    fresh = execute(plan_run(_settings(tmp_path, "fresh", seeds=[0]), load_catalog()),
                    executor=LocalExecutor(cell_process="cell"), prepare_model=False)
    assert [c["status"] for c in shared["cells"]] == ["ok", "ok"]
    assert [_comparable(c) for c in shared["cells"]] == [_comparable(c) for c in fresh["cells"]]
    assert [c["process"] for c in shared["cells"]] == ["fresh", "reused"]
    assert [c["process"] for c in fresh["cells"]] == ["fresh", "fresh"]
    assert kept._devices == {}  # the run's end ended the device's process


class RecordingLocal(LocalExecutor):
    """Notes the kept processes as the run creates them (the run's end closes them all)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.kept: dict[Slot, int] = {}

    def _device_process(self, slot):
        kept = super()._device_process(slot)
        self.kept[slot] = kept.process.pid
        return kept


def test_two_slots_on_one_device_keep_a_process_each(tiny, tmp_path):
    # what --jobs 2 on CUDA plans (two slots on one device, told apart by their cores), run on the CPU
    if len(available_cores()) < 2:
        pytest.skip("needs 2 CPU cores")
    executor = RecordingLocal(_two_cpu_slots(), cell_process="device")
    data = execute(plan_run(_settings(tmp_path, "run"), load_catalog()), executor=executor, prepare_model=False)
    sequential = execute(plan_run(_settings(tmp_path, "sequential"), load_catalog()), executor=LocalExecutor(),
                         prepare_model=False)
    assert [_comparable(c) for c in data["cells"]] == [_comparable(c) for c in sequential["cells"]]
    assert len(executor.kept) == 2 and len(set(executor.kept.values())) == 2  # a process of its own per slot
    assert sorted(c["process"] for c in data["cells"]) == ["fresh", "fresh", "reused", "reused"]
    assert [c["device_shared_by"] for c in data["cells"]] == [2] * 4
    assert executor._devices == {}  # the run's end ended both


def test_a_killed_cell_in_a_device_process_fails_alone_and_the_next_cell_gets_a_new_process(tiny, tmp_path):
    settings = _settings(tmp_path, "run", methods=["zero-shot", "fake-killed", "lora"], seeds=[0])
    data = execute(plan_run(settings, load_catalog()), executor=LocalExecutor(cell_process="device"), prepare_model=False)
    cells = {c["method"]: c for c in data["cells"]}
    assert {m: c["status"] for m, c in cells.items()} == {"zero-shot": "ok", "fake-killed": "failed", "lora": "ok"}
    assert "killed by SIGKILL" in cells["fake-killed"]["error"]
    assert cells["zero-shot"]["process"] == "fresh" and cells["lora"]["process"] == "fresh"  # a new process after the kill


def test_an_interrupt_stops_the_cell_in_a_device_process(tiny, tmp_path):
    settings = _settings(tmp_path, "run", methods=["zero-shot", "fake-slow"], seeds=[0],
                         options={"fake-slow": {"seconds": 600.0}})
    executor = InterruptAfterFirst(cell_process="device")
    with pytest.raises(Interrupted) as info:
        execute(plan_run(settings, load_catalog()), executor=executor, prepare_model=False)
    assert info.value.finished == 1  # the 600 s cell was stopped, not waited for
    assert executor._devices == {}


def test_cell_process_applies_to_the_local_executor_only(tiny, tmp_path):
    with pytest.raises(UsageError, match="--cell-process device applies to --executor local only"):
        plan_run(_settings(tmp_path, "run", executor="in-process", cell_process="device"), load_catalog())


# --- The cache key and the device --------------------------------------------------------------------

def test_the_cache_key_holds_the_device_type_not_its_index():
    base = CellSpec(task="t", method="m", seed=0, model="x", method_config={}, steps=1, device="cuda:0")
    key = _cell_key(base, "task", "model")
    assert _cell_key(CellSpec(**(base.to_dict() | {"device": "cuda:1"})), "task", "model") == key
    assert _cell_key(CellSpec(**(base.to_dict() | {"device": "cuda"})), "task", "model") == key
    assert _cell_key(CellSpec(**(base.to_dict() | {"device": "cpu"})), "task", "model") != key


# --- On CUDA devices (skipped without them) ----------------------------------------------------------

@pytest.mark.skipif(cuda_device_count() < 1, reason="needs a CUDA device")
def test_a_cell_on_a_listed_device_records_it_and_is_reused_on_another(tiny, tmp_path):
    settings = _settings(tmp_path, "run", devices=["cuda:0"], seeds=[0], threads=0)
    data = execute(plan_run(settings, load_catalog()), prepare_model=False)
    assert [c["status"] for c in data["cells"]] == ["ok", "ok"], [c["error"] for c in data["cells"]]
    assert all(c["device"] == "cuda:0" and c["config"]["device"] == "cuda:0" for c in data["cells"])
    assert data["cells"][1]["measurements"]["memory"]["device_type"] == "cuda"
    assert [c["process"] for c in data["cells"]] == ["fresh", "reused"]  # auto: one process for the device
    # The reused process's CUDA memory figures are the cell's own: the same as in a fresh process.
    fresh = execute(plan_run(_settings(tmp_path, "fresh", devices=["cuda:0"], seeds=[0], threads=0, cell_process="cell"),
                             load_catalog()), prepare_model=False)
    def cuda_figures(cell):
        return {k: v for k, v in cell["measurements"]["memory"].items() if "allocated" in k}
    assert [cuda_figures(c) for c in data["cells"]] == [cuda_figures(c) for c in fresh["cells"]]
    assert [c["process"] for c in fresh["cells"]] == ["fresh", "fresh"]
    # the same cells planned for plain --device cuda (or another index) are the cached ones
    counting = CountingLocal()
    again = execute(plan_run(_settings(tmp_path, "run", device="cuda", seeds=[0], threads=0), load_catalog()),
                    executor=counting, prepare_model=False)
    assert counting.ran == [] and again["run"]["cells_cached"] == 2


@pytest.mark.skipif(cuda_device_count() < 1, reason="needs a CUDA device")
def test_two_jobs_share_one_cuda_device_each_cell_in_its_own_process(tiny, tmp_path):
    if len(available_cores()) < 2:
        pytest.skip("needs 2 CPU cores")
    plan = plan_run(_settings(tmp_path, "run", device="cuda", jobs=2, seeds=[0], threads=0), load_catalog())
    assert [s.device for s in plan.slots] == ["cuda:0", "cuda:0"]
    data = execute(plan, prepare_model=False)
    assert [c["status"] for c in data["cells"]] == ["ok", "ok"], [c["error"] for c in data["cells"]]
    for cell in data["cells"]:
        assert cell["device"] == "cuda:0" and cell["device_shared_by"] == 2 and cell["process"] == "fresh"
        memory = cell["measurements"]["memory"]
        assert memory["device_type"] == "cuda"
        # each cell's own allocator figures (torch counts per process), for every phase it ran
        assert memory["cuda_baseline_allocated_bytes"] > 0 and memory["eval_peak_allocated_bytes"] > 0
        assert (memory.get("train_peak_allocated_bytes") or 0) > 0 or cell["method"] == "zero-shot"
    assert "taken while up to 2 cells shared a device" in (tmp_path / "run" / "report.md").read_text()
    # the cache does not depend on the slot: the same cells one at a time are the cached ones
    counting = CountingLocal()
    again = execute(plan_run(_settings(tmp_path, "run", device="cuda", seeds=[0], threads=0), load_catalog()),
                    executor=counting, prepare_model=False)
    assert counting.ran == [] and again["run"]["cells_cached"] == 2


@pytest.mark.skipif(cuda_device_count() < 2, reason="needs two CUDA devices")
def test_two_devices_run_cells_side_by_side(tiny, tmp_path):
    settings = _settings(tmp_path, "run", devices=["cuda:0", "cuda:1"], threads=0)
    data = execute(plan_run(settings, load_catalog()), prepare_model=False)
    assert [c["status"] for c in data["cells"]] == ["ok"] * 4
    assert {c["device"] for c in data["cells"]} == {"cuda:0", "cuda:1"}


# --- The live view ---------------------------------------------------------------------------------------

def test_the_live_view_shows_a_bar_per_running_cell_named_with_its_slot(tmp_path):
    from types import SimpleNamespace

    from tuning_bench.cli.liveview import LiveView

    jobs = [_job(f"m{i}", tmp_path) for i in range(3)]
    slots = [Slot("cpu", (0,)), Slot("cpu", (1,))]
    plan = SimpleNamespace(jobs=jobs, slots=slots, out_dir=tmp_path, precision_choice=None,
                           settings=SimpleNamespace(steps=1))
    view = LiveView()
    view.prepare(plan, jobs, [])
    try:
        view.start(jobs[0], 0, 3, where=slots[0].label)
        view.start(jobs[1], 1, 3, where=slots[1].label)
        view.event(jobs[1], {"event": "phase", "phase": "train", "total": 1})
        shown = [task.description for task in view.steps.tasks]
        assert shown == ["t/m0/seed 0 on cpu (cores 0): starting", "t/m1/seed 0 on cpu (cores 1): train"]
        view.finish(jobs[0], {"status": "ok"})
        view.start(jobs[2], 2, 3, where=slots[0].label)
        assert [task.description.split(":")[0] for task in view.steps.tasks] == [
            "t/m1/seed 0 on cpu (cores 1)", "t/m2/seed 0 on cpu (cores 0)"]
    finally:
        view.close()
