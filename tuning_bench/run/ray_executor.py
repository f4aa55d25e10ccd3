"""``--executor ray``: each cell a Ray task, on whichever node of a Ray cluster has the resources it asks for.

The driver (this process) submits every cell at once, each asking for ``--cell-cpus`` and
``--cell-gpus``; Ray runs as many at a time as the cluster holds. On its worker a cell still runs in a
process of its own (``run.ray_worker``), so its measurements are the same kind as a local cell's. The
record and the cell's files come back through Ray's object store, and the runner writes the cache and
results.json exactly as for the local executor: the cache key does not name the executor, so a run can
be resumed with either.

Faults: a cell whose process, worker or node died runs again, up to ``--retries`` times, and its record
lists the attempts that died (``retried``); a cell that failed on its own (an error, a failed guard)
is not retried, as it would fail the same way. Closing the generator (Ctrl-C) cancels every cell not
finished, running or waiting. Ray is imported only here, and only when the executor is used.
"""

from __future__ import annotations

import importlib.util
import logging
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from tuning_bench.api.errors import UsageError
from tuning_bench.run.executor import CellJob, EventSink, Executor
from tuning_bench.run.ray_worker import EventMailbox, run_cell_task, write_cell_files

RAY_SETTINGS = ("cell_gpus", "cell_cpus", "ray_address", "retries")
DEFAULT_RETRIES = 1
INSTALL_HINT = "pip install 'tuning-bench[ray]'"
POLL_SECONDS = 0.2


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_settings(settings: Any) -> None:
    """Refuse Ray settings without ``--executor ray``, and ``--executor ray`` without Ray installed."""
    if settings.executor != "ray":
        given = [name for name in RAY_SETTINGS if getattr(settings, name, None) is not None]
        if given:
            raise UsageError(f"{_flag(given[0])} applies to --executor ray only; add --executor ray or leave it out")
        return
    if importlib.util.find_spec("ray") is None:
        raise UsageError(f"--executor ray needs Ray, which is not installed here: {INSTALL_HINT}")


def plan_device(settings: Any) -> tuple[str, Any]:
    """The cells' device and precision for a Ray run: the cluster's GPUs need not be on this machine.

    ``auto`` means CUDA when ``--cell-gpus`` asks for GPUs or this machine has one. Ray picks each
    cell's GPU, so ``cuda:N`` is refused. Without a local GPU ``--precision auto`` cannot probe one and
    must be given.
    """
    import torch

    from tuning_bench.engine.precision import PrecisionChoice, choose_precision

    requested, gpus = settings.device, settings.cell_gpus
    if requested.startswith("cuda:"):
        raise UsageError(f"--device {requested} with --executor ray: Ray gives each cell its GPU; "
                         "use --device cuda (and --cell-gpus 1 or a fraction such as 0.5)")
    if requested not in ("auto", "cpu", "cuda"):
        raise UsageError(f"--device {requested}: expected auto, cpu or cuda with --executor ray")
    local_cuda = torch.cuda.is_available()
    device = requested if requested != "auto" else ("cuda" if (gpus or 0) > 0 or local_cuda else "cpu")
    if device == "cpu" and gpus:
        raise UsageError(f"--cell-gpus {gpus:g} with cells on the CPU; give --device cuda, or leave out --cell-gpus")
    if gpus is not None and gpus > 1 and gpus != int(gpus):
        raise UsageError(f"--cell-gpus {gpus:g}: Ray shares a GPU only by fractions below 1; give a fraction "
                         "such as 0.5 or a whole number of GPUs")
    if device == "cuda" and gpus == 0:
        raise UsageError("--cell-gpus 0 with cells on CUDA: each cell needs a GPU or a share of one, "
                         "e.g. --cell-gpus 1 or 0.5")
    if device == "cuda" and not local_cuda:
        if settings.precision == "auto":
            raise UsageError("--precision auto probes a GPU on this machine, which has none; "
                             "give --precision bf16 or fp32 for the cluster's GPUs")
        return device, PrecisionChoice(settings.precision, settings.precision, "requested", "a GPU of the Ray cluster")
    return device, choose_precision(settings.precision, device)


def cell_resources(device: str, cell_cpus: int | None, cell_gpus: float | None,
                   nodes: Sequence[dict[str, float]]) -> tuple[int, float]:
    """CPUs and GPUs each cell asks Ray for; ``nodes``: the alive nodes' resources (``{"CPU": 8, "GPU": 2}``).

    Defaults: a CPU cell takes every core of the smallest node (one cell per node at a time, as a local
    run: more cells per node would share its cores and make each slower); a CUDA cell one GPU and one core.
    """
    if device.startswith("cuda"):
        return cell_cpus or 1, 1.0 if cell_gpus is None else cell_gpus
    if cell_cpus:
        return cell_cpus, 0.0
    counts = [int(node.get("CPU", 0)) for node in nodes if node.get("CPU", 0) >= 1]
    return (min(counts) if counts else 1), 0.0


def infeasible(cpus: int, gpus: float, nodes: Sequence[dict[str, float]]) -> str | None:
    """Why no node of the cluster, as it is now, can run a cell (None: some node can)."""
    if any(node.get("CPU", 0) >= cpus and node.get("GPU", 0) >= gpus for node in nodes):
        return None
    largest = max(nodes, key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)), default={})
    return (f"no node of the Ray cluster has {cpus} CPUs" + (f" and {gpus:g} GPUs" if gpus else "")
            + f" free for a cell (the largest has {largest.get('CPU', 0):g} CPUs, {largest.get('GPU', 0):g} GPUs); "
            "the cells wait until such a node joins: lower --cell-cpus / --cell-gpus, or press Ctrl-C")


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError(f"--executor ray needs Ray, which is not installed here: {INSTALL_HINT}") from None
    return ray


def _lost(ray: Any, exc: BaseException) -> bool:
    """Whether a task's error means its worker, node or result was lost (worth another attempt)."""
    kinds = tuple(getattr(ray.exceptions, name) for name in
                  ("WorkerCrashedError", "NodeDiedError", "ObjectLostError", "OwnerDiedError", "OutOfMemoryError",
                   "LocalRayletDiedError", "RaySystemError") if hasattr(ray.exceptions, name))
    return isinstance(exc, kinds)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


class RayExecutor(Executor):
    """Runs each cell as a Ray task (see the module docstring); yields records as cells finish.

    ``address``: the cluster (None: Ray's own search, else a new local instance, shut down at the end);
    ``cell_cpus``/``cell_gpus``: what each cell asks for (None: see ``cell_resources``); ``retries``:
    attempts after a death; ``init_options``: more ``ray.init`` arguments (tests start a small instance).
    If Ray is already initialised in this process it is used as it is and left running.
    """

    name = "ray"
    announces_starts = True

    def __init__(self, address: str | None = None, cell_cpus: int | None = None, cell_gpus: float | None = None,
                 retries: int | None = None, init_options: dict[str, Any] | None = None) -> None:
        self.address = address
        self.cell_cpus = cell_cpus
        self.cell_gpus = cell_gpus
        self.retries = DEFAULT_RETRIES if retries is None else retries
        self.init_options = init_options or {}
        self.cancelled: list[Any] = []  # the tasks cancelled when the run was stopped (for tests and logs)
        self._owns_ray = False

    @classmethod
    def from_settings(cls, settings: Any) -> RayExecutor:
        return cls(settings.ray_address, settings.cell_cpus, settings.cell_gpus, settings.retries)

    def start(self) -> None:
        """Connect to (or start) Ray now, so that its start overlaps nothing else the run waits for."""
        ray = _ray()
        if ray.is_initialized():
            return
        # ray.init replaces the SIGTERM handler, which `tbench run` uses to stop and keep finished cells.
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGTERM) if in_main else None
        options = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
        try:
            ray.init(address=self.address, **(options | self.init_options))
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"--ray-address {self.address}" if self.address else "Ray"
            raise UsageError(f"{where}: cannot connect ({_first_line(exc)}); start the cluster (ray start --head) "
                             "or fix the address") from None
        finally:
            if in_main and previous is not None:
                signal.signal(signal.SIGTERM, previous)
        self._owns_ray = True

    def close(self) -> None:
        """Disconnect from Ray if this executor connected (a local instance it started stops)."""
        if self._owns_ray:
            _ray().shutdown()
            self._owns_ray = False

    def run(self, jobs, on_event) -> Iterator[tuple[CellJob, dict[str, Any]]]:
        if jobs:  # nothing to run: no Ray to start
            yield from self._run(list(jobs), on_event)

    def _run(self, jobs: list[CellJob], on_event: EventSink) -> Iterator[tuple[CellJob, dict[str, Any]]]:
        from tuning_bench import __version__
        from tuning_bench.engine.measure import package_versions

        ray = _ray()
        self.start()
        nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
        cpus, gpus = cell_resources(jobs[0].spec.device, self.cell_cpus, self.cell_gpus, nodes)
        problem = infeasible(cpus, gpus, nodes)
        if problem:
            print(f"warning: {problem}", file=sys.stderr)
        sink = ray.remote(num_cpus=0)(EventMailbox).remote()
        task = ray.remote(run_cell_task)
        driver = {"node_id": ray.get_runtime_context().get_node_id(),
                  "token_cache": str(jobs[0].token_cache) if jobs[0].token_cache else None,
                  "versions": package_versions() | {"tuning_bench": __version__}}
        by_key = {job.key: job for job in jobs}
        attempt: dict[str, int] = {job.key: 0 for job in jobs}
        node: dict[str, str | None] = {job.key: None for job in jobs}
        started: set[str] = set()  # cells whose current attempt's start reached the view
        retried: dict[str, list[dict[str, Any]]] = {job.key: [] for job in jobs}
        pending: dict[Any, CellJob] = {}
        done: set[str] = set()  # cells yielded: late events of theirs are dropped

        def submit(job: CellJob) -> None:
            attempt[job.key] += 1
            node[job.key] = None
            started.discard(job.key)
            # max_retries=0: this loop retries a dead cell itself, so that it can record each death.
            ref = task.options(num_cpus=cpus, num_gpus=gpus, max_retries=0, name=f"tbench {job.spec.label}").remote(
                job.spec.to_dict(), job.key, cpus, driver, sink, attempt[job.key])
            pending[ref] = job

        def forward_events() -> None:
            for key, number, event in ray.get(sink.drain.remote()):
                if key in by_key and number == attempt[key] and key not in done:
                    if event.get("event") == "start":
                        node[key] = event.get("slot")
                        started.add(key)
                    on_event(by_key[key], event)

        for job in jobs:
            submit(job)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
                forward_events()
                for ref in ready:
                    job = pending.pop(ref)
                    record, files, death = self._outcome(ray, ref, job, node)
                    if death and attempt[job.key] <= self.retries:
                        retried[job.key].append({"attempt": attempt[job.key], "node": node[job.key], "error": death})
                        submit(job)
                        continue
                    if job.key not in started:  # its start event never arrived (it died first, or is late)
                        on_event(job, {"event": "start", "device": record.get("device"), "slot": record.get("node")})
                    try:
                        write_cell_files(job.cell_dir, files)
                    except OSError as exc:  # a full disk here: the cell's result cannot be kept whole
                        record = job.failed(f"its files could not be written to {job.cell_dir} ({exc.strerror or exc}); "
                                            "free space there and run again") | {"executor": self.name, "node": node[job.key]}
                    record["attempts"] = attempt[job.key]
                    if retried[job.key]:
                        record["retried"] = retried[job.key]
                    done.add(job.key)
                    yield job, record
        finally:
            for ref in pending:  # Ctrl-C or an error: cancel what runs and what waits
                try:
                    ray.cancel(ref, force=True)
                    self.cancelled.append(ref)
                except Exception:  # noqa: BLE001 - a task that just finished cannot be cancelled; nothing to do
                    pass
            try:
                ray.kill(sink)
            except Exception:  # noqa: BLE001 - Ray may already be shutting down
                pass
            self.close()

    def _outcome(self, ray: Any, ref: Any, job: CellJob, node: dict[str, str | None]) -> tuple[dict[str, Any], dict[str, bytes], str | None]:
        """The record and files of a finished task, and why its cell died (None: it did not)."""
        try:
            result = ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - every task error becomes the cell's record, never the run's
            where = node[job.key]
            if _lost(ray, exc):
                reason = f"its Ray worker or node{f' ({where})' if where else ''} was lost: {_first_line(exc)}"
                record = job.failed(reason)
                record.update(executor=self.name, node=where)
                return record, {}, reason
            cause = getattr(exc, "cause", None) or exc
            record = job.failed(f"the Ray task failed: {_first_line(cause)}")
            record.update(executor=self.name, node=where)
            return record, {}, None
        record = result["record"]
        record.update(executor=self.name, node=result["node"])
        node[job.key] = node[job.key] or result["node"]
        return record, result["files"], record.get("error") if result["died"] else None
