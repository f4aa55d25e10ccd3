"""Executors run cells. The local one runs each in a fresh process, one per slot at a time.

A separate process per cell gives each its own clean peak-memory figure, and a crash or an
out-of-memory kill ends only that cell. Processes come from a fork server that imports torch,
transformers and peft once, so a cell does not pay several seconds of imports. With several slots
(``--devices``, ``--jobs``; see ``run.slots``) several such processes run at once, each on its own
device or its own CPU cores.
"""

from __future__ import annotations

import abc
import collections
import multiprocessing
import os
import queue as queue_module
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuning_bench.engine.cell import CellSpec, run_cell
from tuning_bench.run.cellprocess import _child, _device_worker  # the child's side of a cell process
from tuning_bench.run.slots import Slot, run_in_slots

EventSink = Callable[["CellJob", dict[str, Any]], None]
_PRELOAD = ["tuning_bench.run.preload"]
CELL_PROCESS_MODES = ("auto", "cell", "device")


@dataclass
class CellJob:
    """A cell to run: its spec, its cache key, where it writes files, and the shared token cache."""

    spec: CellSpec
    key: str
    cell_dir: Path
    token_cache: Path | None

    def failed(self, error: str, device: str | None = None) -> dict[str, Any]:
        """The record of this cell when it ended without one of its own (``device``: where it ran)."""
        config = self.spec.to_dict() | ({"device": device} if device else {})
        return {"task": self.spec.named_task, "method": self.spec.method, "seed": self.spec.seed, "trial": self.spec.trial,
                "status": "failed", "error": error, "config": config, "device": config["device"]}


class Executor(abc.ABC):
    """Runs cells and yields each result record as it finishes (in any order).

    Implementations must not raise for a failing cell: they yield a record with status "failed".
    When the consumer stops early (Ctrl-C), closing the generator must stop the running cells.
    An executor that sets ``announces_starts`` sends ``{"event": "start", "device": ...}`` through
    ``on_event`` when each cell starts (cells may start out of order); otherwise the runner assumes
    that each cell starts when the one before it finished.
    """

    name: str = "executor"
    announces_starts: bool = False

    @abc.abstractmethod
    def run(self, jobs: Sequence[CellJob], on_event: EventSink) -> Iterator[tuple[CellJob, dict[str, Any]]]:
        ...


class InProcessExecutor(Executor):
    """Runs cells in this process, one after another: for debugging and tests (memory figures are not isolated)."""

    name = "in-process"
    announces_starts = True

    def run(self, jobs, on_event):
        for job in jobs:
            on_event(job, {"event": "start", "device": job.spec.device})
            record = run_cell(job.spec, job.cell_dir, job.token_cache, lambda event, job=job: on_event(job, event))
            yield job, record


def _death_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        number = -exitcode
        name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else str(number)
        hint = " (the system's out-of-memory killer sends this)" if number == signal.SIGKILL else ""
        return f"cell process was killed by {name}{hint}"
    return f"cell process exited with code {exitcode} before reporting a result"


@dataclass
class _DeviceProcess:
    """A slot's long-lived cell process (``--cell-process device``) and its two queues."""

    process: Any
    jobs: Any
    events: Any
    cells: int = 0  # cells it has finished

    def end(self, wait: float = 10.0) -> None:
        """Ask it to stop after its current cell (at once when idle); kill it if it does not within ``wait``."""
        if self.process.is_alive():
            try:
                self.jobs.put(None)
            except (OSError, ValueError):
                pass
            self.process.join(timeout=wait)
        _stop_process(self.process)
        for q in (self.jobs, self.events):
            q.close()


def _stop_process(process: Any) -> None:
    if process.is_alive():
        process.terminate()
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
            process.join()


class LocalExecutor(Executor):
    """Runs each slot's cells one at a time (one slot unless given more), in processes of their own.

    ``cell_process``: ``cell`` starts a fresh process for every cell (its host-memory figures are its own);
    ``device`` keeps one process per slot and runs the slot's cells in it one after another, so imports,
    CUDA initialisation and library start-up are paid once per device; ``auto`` chooses ``device`` on CUDA,
    whose memory figures come from torch's allocator and stay per cell, and ``cell`` on the CPU. A crash
    or a kill still ends only the cell in flight: the next cell gets a new process.

    A slot's device replaces the spec's (``cuda`` becomes ``cuda:1``), so the record says which device
    ran the cell; the cache key holds only the device type (``cellcache.cell_key``). Several slots may
    share a device (``--jobs N`` on CUDA: N per GPU, each with its own cores and its own kept process);
    each record says in ``device_shared_by`` how many slots its device had, so a reader knows its times
    were taken beside that many neighbours.
    """

    name = "local"
    announces_starts = True

    def __init__(self, slots: Sequence[Slot] | None = None, env: dict[str, str | None] | None = None,
                 cell_process: str = "auto") -> None:
        if cell_process not in CELL_PROCESS_MODES:
            raise ValueError(f"cell_process must be one of {', '.join(CELL_PROCESS_MODES)}, not {cell_process!r}")
        self.slots = list(slots) if slots else [Slot("")]  # "": the spec's own device
        self.env = env  # set in each cell process (see _prepare_process)
        self.cell_process = cell_process
        self._devices: dict[Slot, _DeviceProcess] = {}  # each touched only by its own slot's thread
        self._shared_by: dict[str, int] = {}  # device -> how many of this run's slots are on it
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(_PRELOAD)

    def start(self) -> None:
        """Start the fork server now, so its imports overlap with the run's own preparation."""
        from multiprocessing import forkserver

        forkserver.ensure_running()

    def reuses_process(self, slot: Slot) -> bool:
        """Whether ``slot``'s cells share one process (see the class docstring)."""
        if self.cell_process == "auto":
            return slot.device.split(":", 1)[0] == "cuda"
        return self.cell_process == "device"

    def run(self, jobs, on_event):
        slots = [slot if slot.device else Slot(jobs[0].spec.device if jobs else "cpu", slot.cpus) for slot in self.slots]
        self._shared_by = dict(collections.Counter(slot.device for slot in slots))
        try:
            yield from run_in_slots(jobs, slots, self._run_one, on_event)
        finally:
            self.close()

    def close(self) -> None:
        """End the processes kept for devices (each finishes the cell it is running first)."""
        while self._devices:
            self._devices.popitem()[1].end()

    def run_one(self, job: CellJob, slot: Slot, emit: Callable[[dict[str, Any]], None],
                stop: threading.Event | None = None) -> dict[str, Any]:
        """Run one cell in a fresh process in ``slot`` and return its record (how a Ray worker runs its cell)."""
        return self._run_in(None, job, slot, emit, stop or threading.Event())

    def _device_process(self, slot: Slot) -> _DeviceProcess:
        kept = self._devices.get(slot)
        if kept is not None and kept.process.is_alive():
            return kept
        if kept is not None:
            kept.end()
        jobs, events = self._context.Queue(), self._context.Queue()
        process = self._context.Process(target=_device_worker, args=(jobs, events, os.getpid(), slot.cpus, self.env),
                                        name=f"tbench-device-{slot.label}")
        process.start()
        kept = self._devices[slot] = _DeviceProcess(process, jobs, events)
        return kept

    def _run_one(self, job: CellJob, slot: Slot, emit: Callable[[dict[str, Any]], None],
                 stop: threading.Event) -> dict[str, Any]:
        kept = self._device_process(slot) if self.reuses_process(slot) else None
        return self._run_in(kept, job, slot, emit, stop)

    def _run_in(self, kept: _DeviceProcess | None, job: CellJob, slot: Slot, emit: Callable[[dict[str, Any]], None],
                stop: threading.Event) -> dict[str, Any]:
        """Run ``job`` in the slot's kept process, or in a fresh one when ``kept`` is None."""
        spec = job.spec.to_dict() | {"device": slot.device}
        work = (spec, str(job.cell_dir), str(job.token_cache) if job.token_cache else None)
        if kept is not None:
            process, events, reused = kept.process, kept.events, kept.cells > 0
            kept.jobs.put(work)
        else:
            events, reused = self._context.Queue(), False
            process = self._context.Process(target=_child, args=(*work, events, os.getpid(), slot.cpus, self.env),
                                            name=f"tbench-cell-{job.key[:8]}")
            process.start()
        record = _await_record(process, events, emit, stop)
        if kept is None:
            if record is not None:
                process.join(timeout=30)
            _stop_process(process)
            events.close()
        elif record is None:  # stopped, or the process died: the next cell gets a new one
            self._devices.pop(slot, None)
            kept.end(wait=0)
        else:
            kept.cells += 1
        if record is None:
            return job.failed("stopped" if stop.is_set() else _death_reason(process.exitcode), slot.device)
        # None where the slot is not one of a run's (a Ray worker's single cell: Ray decides the sharing)
        shared_by = self._shared_by.get(slot.device)
        return record | {"process": "reused" if reused else "fresh"} | ({"device_shared_by": shared_by} if shared_by else {})


def _await_record(process: Any, events: Any, emit: Callable[[dict[str, Any]], None],
                  stop: threading.Event) -> dict[str, Any] | None:
    """Pass on a cell process's events until it sends its record; None when it died or ``stop`` was set."""
    while not stop.is_set():
        try:
            kind, payload = events.get(timeout=0.2)
        except queue_module.Empty:
            if process.is_alive():
                continue
            try:  # drain what the process sent right before it ended
                kind, payload = events.get(timeout=1.0)
            except queue_module.Empty:
                return None
        if kind == "event":
            emit(payload)
        else:
            return payload
    return None
