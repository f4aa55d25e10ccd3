"""Executors run cells. The local one runs each in a fresh process, one per slot at a time.

A separate process per cell gives each its own clean peak-memory figure, and a crash or an
out-of-memory kill ends only that cell. Processes come from a fork server that imports torch,
transformers and peft once, so a cell does not pay several seconds of imports. With several slots
(``--devices``, ``--jobs``; see ``run.slots``) several such processes run at once, each on its own
device or its own CPU cores.
"""

from __future__ import annotations

import abc
import ctypes
import errno
import fcntl
import multiprocessing
import os
import queue as queue_module
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuning_bench.engine.cell import CellSpec, run_cell
from tuning_bench.run.slots import Slot, run_in_slots

EventSink = Callable[["CellJob", dict[str, Any]], None]
_PRELOAD = ["tuning_bench.run.preload"]


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


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
CELL_LOCK = ".tbench-cell.lock"
CELL_LOCK_WAIT_SECONDS = 15.0


def die_with_parent(run_pid: int) -> None:
    """Make this cell process end when the tbench process that asked for it ends, however it ends.

    A cell process is a child of the fork server, not of tbench: ``PR_SET_PDEATHSIG`` kills it when the
    fork server dies, and a watchdog thread kills it when the tbench process (``run_pid``) dies, even
    by SIGKILL, which no handler sees. Without this an orphaned cell trains on beside the next run and
    writes the same cell directory.
    """
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog below still holds
    # A fork server that died before this point is not covered by the signal; the watchdog's check of
    # run_pid is (the fork server only ends early when tbench has ended).
    watched = None
    if hasattr(os, "pidfd_open"):
        try:
            watched = os.pidfd_open(run_pid)  # becomes readable when the process ends; immune to pid reuse
        except ProcessLookupError:
            os._exit(1)  # tbench has already ended
        except OSError:
            watched = None  # no pidfd here (old kernel, sandbox): poll the pid instead

    def watch() -> None:
        while True:
            if watched is not None:
                ended = bool(select.select([watched], [], [], 0.5)[0])
            else:
                time.sleep(0.5)
                ended = not _pid_alive(run_pid)
            if ended or os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="tbench-parent-watch", daemon=True).start()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_cell_dir(cell_dir: Path, wait: float = CELL_LOCK_WAIT_SECONDS) -> Any:
    """Hold an exclusive lock on a cell directory for this process's life; return the open lock file.

    Raises RuntimeError naming the holder when another process keeps the directory longer than ``wait``
    seconds (a survivor of a killed run dies within a second, so waiting briefly covers that case).
    """
    cell_dir.mkdir(parents=True, exist_ok=True)
    handle = open(cell_dir / CELL_LOCK, "a+")
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            if time.monotonic() >= deadline:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                handle.close()
                raise RuntimeError(f"cell directory {cell_dir} is in use by another process (pid {holder}); "
                                   "stop that process or choose another --out") from None
            time.sleep(0.2)
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _child(spec_dict: dict[str, Any], cell_dir: str, token_cache: str | None, events: Any, run_pid: int,
           cpus: tuple[int, ...] | None = None, env: dict[str, str | None] | None = None) -> None:
    """Entry point of a cell process: run the cell, send progress events and finally the record.

    ``cpus``: the cores of this cell's slot; pinned before torch sets its threads (one per core it may use).
    ``env``: variables to set (None: unset) before anything reads them; the fork server's environment is
    that of its first cell, while e.g. the GPU a Ray worker was given changes from cell to cell.
    """
    for name, value in (env or {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    die_with_parent(run_pid)
    if cpus:
        os.sched_setaffinity(0, cpus)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides about Ctrl-C and stops this process
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    from tuning_bench.taskfiles import taskdata

    taskdata.warn = lambda message: None  # the parent warned about the task's data when it planned the run
    spec = CellSpec.from_dict(spec_dict)
    try:
        lock = lock_cell_dir(Path(cell_dir))
    except (RuntimeError, OSError) as exc:
        record = {"task": spec.named_task, "method": spec.method, "seed": spec.seed, "trial": spec.trial,
                  "status": "failed", "error": str(exc), "config": spec.to_dict()}
        events.put(("record", record))
        return
    try:
        record = run_cell(spec, Path(cell_dir), Path(token_cache) if token_cache else None,
                          lambda e: events.put(("event", e)))
    finally:
        lock.close()
    events.put(("record", record))


def _death_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        number = -exitcode
        name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else str(number)
        hint = " (the system's out-of-memory killer sends this)" if number == signal.SIGKILL else ""
        return f"cell process was killed by {name}{hint}"
    return f"cell process exited with code {exitcode} before reporting a result"


class LocalExecutor(Executor):
    """Each cell in its own process (the default); one cell at a time per slot (one slot unless given more).

    A slot's device replaces the spec's (``cuda`` becomes ``cuda:1``), so the record says which device
    ran the cell; the cache key holds only the device type (``runner._cell_key``).
    """

    name = "local"
    announces_starts = True

    def __init__(self, slots: Sequence[Slot] | None = None, env: dict[str, str | None] | None = None) -> None:
        self.slots = list(slots) if slots else [Slot("")]  # "": the spec's own device
        self.env = env  # set in each cell process (see _child)
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(_PRELOAD)

    def start(self) -> None:
        """Start the fork server now, so its imports overlap with the run's own preparation."""
        from multiprocessing import forkserver

        forkserver.ensure_running()

    def run(self, jobs, on_event):
        slots = [slot if slot.device else Slot(jobs[0].spec.device if jobs else "cpu", slot.cpus) for slot in self.slots]
        return run_in_slots(jobs, slots, self._run_one, on_event)

    def run_one(self, job: CellJob, slot: Slot, emit: Callable[[dict[str, Any]], None],
                stop: threading.Event | None = None) -> dict[str, Any]:
        """Run one cell in a fresh process in ``slot`` and return its record (how a Ray worker runs its cell)."""
        return self._run_one(job, slot, emit, stop or threading.Event())

    def _run_one(self, job: CellJob, slot: Slot, emit: Callable[[dict[str, Any]], None],
                 stop: threading.Event) -> dict[str, Any]:
        spec = job.spec.to_dict() | {"device": slot.device}
        events = self._context.Queue()
        process = self._context.Process(
            target=_child,
            args=(spec, str(job.cell_dir), str(job.token_cache) if job.token_cache else None, events,
                  os.getpid(), slot.cpus, self.env),
            name=f"tbench-cell-{job.key[:8]}",
        )
        process.start()
        record = None
        try:
            while record is None and not stop.is_set():
                try:
                    kind, payload = events.get(timeout=0.2)
                except queue_module.Empty:
                    if not process.is_alive():
                        # Drain what the process sent right before it ended.
                        try:
                            kind, payload = events.get(timeout=1.0)
                        except queue_module.Empty:
                            break
                    else:
                        continue
                if kind == "event":
                    emit(payload)
                else:
                    record = payload
            if record is not None:
                process.join(timeout=30)
        finally:
            if process.is_alive():
                process.terminate()
                process.join(timeout=10)
                if process.is_alive():
                    process.kill()
                    process.join()
            events.close()
        if record is None:
            return job.failed("stopped" if stop.is_set() else _death_reason(process.exitcode), slot.device)
        return record
