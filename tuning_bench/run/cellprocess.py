"""What runs inside a cell process: its set-up, one cell, or a device's cells one after another.

The parent side (which process runs which cell, its events and record, stopping it) is ``run.executor``;
everything here runs in the child, started from the fork server: it makes the process die with tbench,
pins it to its slot's cores, locks the cell's directory so that no second process writes it, runs the
cell and sends its events and record back, and between a device process's cells releases what the last
one held.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import select
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tuning_bench.engine.cell import CellSpec, run_cell

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


def _prepare_process(run_pid: int, cpus: tuple[int, ...] | None, env: dict[str, str | None] | None) -> None:
    """What a process that runs cells does once, before its first cell.

    ``cpus``: the cores of its slot; pinned before torch sets its threads (one per core it may use).
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
        import torch

        # torch sizes its thread pool from the machine, not the affinity: without this a pinned process
        # would run a thread per machine core on its few cores. A CPU cell sets its own count (--threads)
        # again; a CUDA cell keeps this one for its host-side work.
        torch.set_num_threads(len(cpus))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides about Ctrl-C and stops this process
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    from tuning_bench.taskfiles import taskdata

    taskdata.warn = lambda message: None  # the parent warned about the task's data when it planned the run


def _run_job(spec_dict: dict[str, Any], cell_dir: str, token_cache: str | None, events: Any) -> None:
    """Run one cell in this process, sending its progress events and finally its record."""
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


def _child(spec_dict: dict[str, Any], cell_dir: str, token_cache: str | None, events: Any, run_pid: int,
           cpus: tuple[int, ...] | None = None, env: dict[str, str | None] | None = None) -> None:
    """Entry point of a process that runs one cell (``--cell-process cell``)."""
    _prepare_process(run_pid, cpus, env)
    _run_job(spec_dict, cell_dir, token_cache, events)


def _device_worker(jobs: Any, events: Any, run_pid: int, cpus: tuple[int, ...] | None = None,
                   env: dict[str, str | None] | None = None) -> None:
    """Entry point of a process that runs a device's cells one after another (``--cell-process device``).

    Its imports, CUDA context and libraries' start-up are paid once, not once per cell. Between cells
    everything a cell allocated is released (the cell's objects go out of scope; freed device memory is
    handed back), so the next cell's CUDA memory figures, which the allocator counts from its baseline,
    are its own. ``None`` from ``jobs`` ends the process.
    """
    _prepare_process(run_pid, cpus, env)
    while (job := jobs.get()) is not None:
        _run_job(*job, events)
        _release_between_cells()


def _release_between_cells() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_initialized():
        # cuBLAS keeps its workspaces in torch's allocator for the process's life; a fresh process starts
        # without them, so they go too, or the next cell's baseline would count the last cell's workspace.
        clear_workspaces = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
        if clear_workspaces is not None:
            clear_workspaces()
        torch.cuda.empty_cache()
