"""--executor ray: the same records as the local executor, retries after a death, cancellation on Ctrl-C.

The tests that need Ray share one local Ray instance, started once for the whole test session (two
CPUs, no dashboard); the cells are tiny models in fp32 on the CPU. The checks of settings, resources
and files below them need no Ray.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from pathlib import Path

import pytest
from conftest import TESTS, run_tbench

from tuning_bench.api.errors import UsageError
from tuning_bench.host.plugins import load_catalog
from tuning_bench.run.executor import InProcessExecutor, LocalExecutor
from tuning_bench.run.ray_executor import RayExecutor, cell_resources, check_settings, infeasible, plan_device
from tuning_bench.run.ray_worker import claimed_cores, read_cell_files, write_cell_files
from tuning_bench.run.results import load_results
from tuning_bench.run.runner import Interrupted, execute, plan_run
from tuning_bench.run.settings import RunSettings

RECORD_FIELDS = ("status", "error", "quality", "headline", "predictions", "per_example", "curves", "samples", "prompt",
                 "guard", "method_config", "config")
MEASUREMENT_FIELDS = ("final_val_loss", "final_train_loss", "best_val_loss", "trainable_params", "generated_tokens",
                      "saved_bytes", "steps", "train_tokens")


@pytest.fixture(scope="session")
def ray_instance():
    """One local Ray instance for the session; its workers find the test plugin modules (fake_plugins)."""
    ray = pytest.importorskip("ray")
    previous = os.environ.get("PYTHONPATH")
    # Workers inherit the environment Ray starts with; conftest puts tests/ on sys.path of this process only.
    os.environ["PYTHONPATH"] = os.pathsep.join([str(TESTS)] + ([previous] if previous else []))
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    finally:
        if previous is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = previous
    yield ray
    ray.shutdown()


def settings(out: Path, **overrides) -> RunSettings:
    # One torch thread: the same arithmetic in both executors whatever cores a machine has.
    values = dict(methods=["zero-shot", "lora"], tasks=["tiny-gen"], model="tiny-llama", seeds=[0], steps=2,
                  batch_size=4, eval_examples=3, val_examples=2, eval_batch_size=4, out=str(out), executor="ray",
                  samples=2, threads=1)
    values.update(overrides)
    return RunSettings(**values)


def _run(s: RunSettings, executor, **kwargs):
    plan = plan_run(s, load_catalog())
    return execute(plan, executor=executor, prepare_model=False, **kwargs), plan


class Counting(InProcessExecutor):
    def __init__(self):
        self.ran = []

    def run(self, jobs, on_event):
        for job, record in super().run(jobs, on_event):
            self.ran.append(job.spec.label)
            yield job, record


def test_ray_gives_the_same_records_as_the_local_executor_and_either_resumes_the_other(tiny, tmp_path, ray_instance):
    local, local_plan = _run(settings(tmp_path / "local", executor="local"), LocalExecutor())
    remote, ray_plan = _run(settings(tmp_path / "ray"), RayExecutor())
    assert [job.key for job in ray_plan.jobs] == [job.key for job in local_plan.jobs]  # the key names no executor
    assert [c["method"] for c in remote["cells"]] == ["zero-shot", "lora"]
    for a, b in zip(local["cells"], remote["cells"]):
        assert a["status"] == b["status"] == "ok", (a["error"], b["error"])
        for name in RECORD_FIELDS:
            assert a[name] == b[name], name
        for name in MEASUREMENT_FIELDS:
            assert a["measurements"].get(name) == b["measurements"].get(name), name
        # Memory stays the cell process's own: Ray is not imported into it (its worker script would be, unhidden).
        local_memory, ray_memory = a["measurements"]["memory"], b["measurements"]["memory"]
        assert abs(ray_memory["cpu_baseline_rss_bytes"] / local_memory["cpu_baseline_rss_bytes"] - 1) < 0.05
        assert (a["executor"], b["executor"]) == ("local", "ray")
        assert a["node"] == b["node"] == socket.gethostname() and b["attempts"] == 1 and not b.get("retried")
    assert remote["run"]["executor"] == "ray"
    # The trained state came back from the worker and sits where the local executor puts it.
    key = ray_plan.jobs[1].key
    local_state = read_cell_files(tmp_path / "local" / "cells" / key)
    ray_state = read_cell_files(tmp_path / "ray" / "cells" / key)
    assert any(name.endswith(".safetensors") for name in ray_state)
    assert {name: len(data) for name, data in ray_state.items()} == {name: len(data) for name, data in local_state.items()}
    # Resumed with another executor: every cell is cached.
    counting = Counting()
    data, _ = _run(settings(tmp_path / "ray", executor="local"), counting)
    assert counting.ran == [] and data["run"]["cells_cached"] == 2


class KillWorkerAtFirstStart(RayExecutor):
    """Kills the Ray worker process (SIGKILL) that runs the first cell to start, as a lost machine would."""

    def __init__(self, **options):
        super().__init__(**options)
        self.killed: list[int] = []

    def run(self, jobs, on_event):
        def spy(job, event):
            if event.get("event") == "start" and not self.killed and event.get("worker_pid"):
                self.killed.append(event["worker_pid"])
                os.kill(event["worker_pid"], signal.SIGKILL)
            on_event(job, event)

        return super().run(jobs, spy)


def test_a_cell_whose_worker_was_killed_runs_again_and_says_so(tiny, tmp_path, ray_instance):
    executor = KillWorkerAtFirstStart()
    s = settings(tmp_path / "run", methods=["fake-slow"], options={"fake-slow": {"seconds": 2.0}})
    data, _ = _run(s, executor)
    [cell] = data["cells"]
    assert executor.killed and cell["status"] == "ok", cell["error"]
    assert cell["attempts"] == 2 and len(cell["retried"]) == 1
    first = cell["retried"][0]
    assert first["attempt"] == 1 and first["node"] == socket.gethostname()
    assert "Ray worker or node" in first["error"] and "was lost" in first["error"]


def test_a_cell_killed_every_time_fails_alone_after_its_retries(tiny, tmp_path, ray_instance):
    data, _ = _run(settings(tmp_path / "run", methods=["fake-killed", "zero-shot"]), RayExecutor(retries=1))
    cells = {c["method"]: c for c in data["cells"]}
    killed = cells["fake-killed"]
    assert killed["status"] == "failed" and killed["error"].startswith("cell process was killed by SIGKILL")
    assert killed["attempts"] == 2 and [r["attempt"] for r in killed["retried"]] == [1]
    assert killed["retried"][0]["error"].startswith("cell process was killed by SIGKILL")
    assert cells["zero-shot"]["status"] == "ok" and cells["zero-shot"]["attempts"] == 1


class InterruptAfterFirst(RayExecutor):
    """Ctrl-C as soon as the first cell is finished (the runner sees KeyboardInterrupt and closes the run)."""

    def run(self, jobs, on_event):
        inner = super().run(jobs, on_event)
        try:
            yield next(inner)
            raise KeyboardInterrupt
        finally:
            inner.close()


def test_ctrl_c_cancels_the_outstanding_cells_and_keeps_the_finished_one(tiny, tmp_path, ray_instance):
    executor = InterruptAfterFirst()
    s = settings(tmp_path / "run", methods=["zero-shot", "fake-slow"], seeds=[0, 1],
                 options={"fake-slow": {"seconds": 60.0}})
    with pytest.raises(Interrupted) as info:
        _run(s, executor)
    assert info.value.finished == 1 and info.value.total == 4
    partial = load_results(tmp_path / "run")
    assert partial["interrupted"] and len(partial["cells"]) == 1 and len(partial["pending"]) == 3
    assert len(executor.cancelled) == 3
    outcomes = []
    for ref in executor.cancelled:  # an outstanding task ends cancelled (a running one by killing its worker)
        try:
            ray_instance.get(ref, timeout=60)
            outcomes.append("finished")
        except (ray_instance.exceptions.TaskCancelledError, ray_instance.exceptions.WorkerCrashedError):
            outcomes.append("cancelled")
    # Both 60-second cells end cancelled; the other quick zero-shot cell may finish in the moment between
    # the first result and the cancel (its result is not kept: the run counts it pending, above).
    assert outcomes.count("cancelled") >= 2, outcomes
    counting = Counting()
    data, _ = _run(settings(tmp_path / "run", methods=["zero-shot", "fake-slow"], seeds=[0, 1], executor="in-process",
                            options={"fake-slow": {"seconds": 0.0}}), counting)
    assert len(counting.ran) == 3 and not data["interrupted"]


# --- Without Ray ---------------------------------------------------------------------------------

def test_the_live_view_names_each_ray_cell_with_its_node_and_a_retry_replaces_its_bar(tmp_path):
    from types import SimpleNamespace

    from tuning_bench.cli.liveview import LiveView
    from tuning_bench.engine.cell import CellSpec
    from tuning_bench.run.executor import CellJob
    from tuning_bench.run.slots import Slot

    jobs = [CellJob(CellSpec(task="t", method=f"m{i}", seed=0, model="x", method_config={}, steps=1), f"k{i}",
                    tmp_path / f"k{i}", None) for i in range(2)]
    plan = SimpleNamespace(jobs=jobs, slots=[Slot("cpu")], out_dir=tmp_path, precision_choice=None,
                           settings=SimpleNamespace(steps=1, executor="ray", ray_address=None))
    view = LiveView()
    view.prepare(plan, jobs, [])
    try:
        view.start(jobs[0], 0, 2, where="node-a")
        view.start(jobs[1], 1, 2, where="node-b")  # cells run side by side on Ray: both bars stay
        view.start(jobs[0], 2, 2, where="node-b")  # m0 again, after its worker died: one bar for it
        assert sorted(task.description for task in view.steps.tasks) == [
            "t/m0/seed 0 on node-b: starting", "t/m1/seed 0 on node-b: starting"]
    finally:
        view.close()


@pytest.mark.parametrize("flag", ["cell_gpus", "cell_cpus", "ray_address", "retries"])
def test_ray_settings_without_the_ray_executor_are_refused(flag):
    values = {"cell_gpus": 0.5, "cell_cpus": 2, "ray_address": "auto", "retries": 2}
    with pytest.raises(UsageError, match=f"--{flag.replace('_', '-')} applies to --executor ray only"):
        check_settings(RunSettings(executor="local", **{flag: values[flag]}))


def test_the_ray_executor_without_ray_installed_names_the_install(monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else find_spec(name, *a))
    with pytest.raises(UsageError, match=r"--executor ray needs Ray, which is not installed here: pip install 'tuning-bench\[ray\]'"):
        check_settings(RunSettings(executor="ray"))


def test_a_ray_flag_without_the_ray_executor_is_one_line_in_the_cli(tiny, cli_runner, tmp_path):
    result = run_tbench(cli_runner, "run", "--model", "tiny-llama", "--tasks", "tiny-gen", "--methods", "zero-shot",
                        "--retries", "2", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "--retries applies to --executor ray only" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"device": "cuda:1"}, "Ray gives each cell its GPU; use --device cuda"),
    ({"device": "cpu", "cell_gpus": 0.5}, "--cell-gpus 0.5 with cells on the CPU"),
    ({"device": "cuda", "cell_gpus": 0.0, "precision": "fp32"}, "--cell-gpus 0 with cells on CUDA"),
    ({"device": "cuda", "cell_gpus": 1.5, "precision": "fp32"}, "--cell-gpus 1.5: Ray shares a GPU only by fractions below 1"),
])
def test_impossible_ray_devices_are_one_line(overrides, expected):
    with pytest.raises(UsageError, match=expected.replace("(", r"\(")):
        plan_device(RunSettings(executor="ray", **overrides))


def test_cuda_cells_on_a_driver_without_a_gpu_need_a_precision_not_a_local_probe():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(UsageError, match="give --precision bf16 or fp32"):
        plan_device(RunSettings(executor="ray", device="cuda"))
    device, choice = plan_device(RunSettings(executor="ray", device="auto", cell_gpus=0.5, precision="bf16"))
    assert device == "cuda" and choice.precision == "bf16"


def test_cell_resources_default_to_a_whole_small_node_on_cpu_and_one_gpu_on_cuda():
    nodes = [{"CPU": 16.0}, {"CPU": 4.0, "GPU": 2.0}]
    assert cell_resources("cpu", None, None, nodes) == (4, 0.0)
    assert cell_resources("cpu", 2, None, nodes) == (2, 0.0)
    assert cell_resources("cuda", None, None, nodes) == (1, 1.0)
    assert cell_resources("cuda", 2, 0.5, nodes) == (2, 0.5)
    assert infeasible(4, 1.0, nodes) is None
    message = infeasible(8, 1.0, nodes)
    assert "no node of the Ray cluster has 8 CPUs and 1 GPUs" in message and "the largest has 4 CPUs, 2 GPUs" in message


def test_cells_on_one_node_claim_distinct_cores():
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        pytest.skip("needs two cores")
    with claimed_cores(1) as first, claimed_cores(1) as second:
        assert first and second and set(first).isdisjoint(second)
    with claimed_cores(len(cores)) as whole:
        assert whole is None  # the whole node: not pinned, as a local run


def test_cell_files_come_back_into_the_cell_folder_replacing_an_older_state(tmp_path):
    cell = tmp_path / "cell"
    (cell / "state").mkdir(parents=True)
    (cell / "state" / "old.safetensors").write_bytes(b"old")
    write_cell_files(cell, {"state/adapter.safetensors": b"new", "state/tbench-prompt.json": b"{}"})
    assert read_cell_files(cell) == {"state/adapter.safetensors": b"new", "state/tbench-prompt.json": b"{}"}
    for bad in ("../escape", "/abs/path"):
        with pytest.raises(ValueError, match="outside its folder"):
            write_cell_files(cell, {bad: b"x"})
