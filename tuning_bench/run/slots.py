"""Slots: the places where cells run at the same time, and the scheduler that keeps each one busy.

A slot is one CUDA device (``--devices cuda:0,cuda:1``) or a share of the CPU cores (``--jobs N``: each
of N slots owns ``cores // N`` cores, and its cell is pinned to them so that two cells never fight over
one core). On CUDA, ``--jobs N`` puts N slots on each device (the run's, or each of ``--devices``), and
the host's cores are split between all of them the same way: a 135M-parameter model leaves the GPU idle
while the host launches kernels, so cells on their own cores can share it. Without either flag there is
one slot, the run's ``--device``, unpinned: the run behaves as it always did. The scheduler knows
nothing of processes: it hands each job to ``run_one`` on a free slot, so it can be tested with a stub
that records how many cells overlapped.
"""

from __future__ import annotations

import collections
import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tuning_bench.api.errors import UsageError

if TYPE_CHECKING:
    from tuning_bench.run.executor import CellJob

Emit = Callable[[dict[str, Any]], None]
RunOne = Callable[["CellJob", "Slot", Emit, threading.Event], dict[str, Any]]


@dataclass(frozen=True)
class Slot:
    """Where one cell at a time runs: a device, and on CPU the cores its process is pinned to (None: not pinned)."""

    device: str
    cpus: tuple[int, ...] | None = None

    @property
    def label(self) -> str:
        return self.device if self.cpus is None else f"{self.device} (cores {','.join(map(str, self.cpus))})"


def available_cores() -> list[int]:
    """The CPU cores this process may run on (its affinity, which a container or ``taskset`` may narrow)."""
    return sorted(os.sched_getaffinity(0))


def cuda_device_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def device_type(device: str) -> str:
    """``cuda:1`` -> ``cuda``: what a cell's result may depend on (which of equal devices ran it does not)."""
    return device.split(":", 1)[0]


def _check_devices(devices: Sequence[str], cuda_count: int) -> list[str]:
    if any(device_type(d) == "cpu" for d in devices):
        if all(device_type(d) == "cpu" for d in devices):
            raise UsageError(f"--devices {','.join(devices)}: --devices lists CUDA devices; "
                             "to run cells side by side on the CPU use --jobs N")
        raise UsageError(f"--devices {','.join(devices)}: mixes cpu and cuda (their cells would not be comparable); "
                         "list CUDA devices only, e.g. --devices cuda:0,cuda:1")
    checked = []
    for device in devices:
        kind, _, index = device.partition(":")
        if kind != "cuda" or not index.isdigit():
            raise UsageError(f"--devices {device}: expected CUDA devices with their index, e.g. --devices cuda:0,cuda:1")
        if cuda_count == 0:
            raise UsageError(f"--devices {device}: no CUDA device is available here; "
                             "leave out --devices (or use --jobs N to run cells side by side on the CPU)")
        if int(index) >= cuda_count:
            raise UsageError(f"--devices {device}: this machine has {cuda_count} CUDA device(s), "
                             f"cuda:0 to cuda:{cuda_count - 1}; list only those")
        checked.append(f"cuda:{int(index)}")
    return checked


def plan_slots(devices: Sequence[str], jobs: int, device: str, threads: int, executor: str,
               cores: Sequence[int] | None = None, cuda_count: int | None = None) -> list[Slot]:
    """The run's slots from ``--devices``, ``--jobs``, ``--device`` and ``--threads``; raises UsageError for a bad mix.

    ``device`` is the run's ``--device`` as given (``auto`` unless set) or, without ``--devices``, as
    resolved (``cpu``, ``cuda``, ``cuda:1``); ``cores`` and ``cuda_count`` default to this machine's (tests
    pass fake ones). ``--jobs N`` means N slots per device: on the CPU N core shares, on CUDA N slots on
    each device, each pinned to its own share of the host's cores. Slots on one device differ by their
    cores, so each gets a process of its own (they key the executor's kept processes).
    """
    if devices:
        if device != "auto":
            raise UsageError(f"--devices and --device {device} both given; give one of them "
                             "(--devices cuda:0,cuda:1 runs one cell per device at a time)")
        if executor != "local":
            raise UsageError("--devices needs --executor local (each cell in its own process)")
        checked = _check_devices(devices, cuda_device_count() if cuda_count is None else cuda_count)
        if jobs == 1:
            return [Slot(d) for d in checked]
        return _pinned_slots(checked, jobs, threads, cores)
    if jobs == 1:
        return [Slot(device)]
    if executor != "local":
        raise UsageError(f"--jobs {jobs} needs --executor local (each cell in its own process)")
    if device_type(device) == "cuda":
        # "cuda" is the current device, cuda:0 unless told otherwise; its slots name it, so records do.
        named = device if ":" in device else "cuda:0"
        count = cuda_device_count() if cuda_count is None else cuda_count
        if not named.split(":", 1)[1].isdigit() or int(named.split(":", 1)[1]) >= count:
            raise UsageError(f"--device {device} with --jobs {jobs}: this machine has {count} CUDA device(s); "
                             "use --device cuda" + (f" or cuda:0 to cuda:{count - 1}" if count > 1 else ""))
        return _pinned_slots([named], jobs, threads, cores)
    return _pinned_slots([device_type(device) if device != "auto" else "cpu"], jobs, threads, cores)


def _pinned_slots(devices: Sequence[str], jobs: int, threads: int, cores: Sequence[int] | None) -> list[Slot]:
    """``jobs`` slots on each of ``devices``, the available cores split evenly between all of them."""
    cores = list(available_cores() if cores is None else cores)
    count = jobs * len(devices)
    on = "" if devices == ["cpu"] else f" on {', '.join(devices)}"
    if count > len(cores):
        fits = len(cores) // len(devices)
        many = f"{count} cells at a time{on}" if len(devices) > 1 else f"--jobs {jobs}{on}"
        raise UsageError(f"{many}: this machine has {len(cores)} CPU core(s) available; "
                         f"use --jobs {fits} or fewer (each cell needs a core)" if fits else
                         f"{many}: this machine has {len(cores)} CPU core(s) available, fewer than the devices; "
                         "list fewer devices (each cell needs a core)")
    share = len(cores) // count
    if threads > share:
        raise UsageError(f"--threads {threads} with --jobs {jobs}{on}: each cell gets {share} of the {len(cores)} cores; "
                         f"use --threads {share} or fewer, or 0 (one per core of the cell's share)")
    # Each slot owns whole cores; a remainder (e.g. 1 of 3 cores with --jobs 2) stays idle so that every
    # cell runs with the same number of threads. Slots alternate between devices, so that the scheduler's
    # first cells spread over the devices before any device takes a second one.
    order = [device for _ in range(jobs) for device in devices]
    return [Slot(device, tuple(cores[i * share:(i + 1) * share])) for i, device in enumerate(order)]


def run_in_slots(jobs: Sequence[CellJob], slots: Sequence[Slot], run_one: RunOne,
                 on_event: Callable[[CellJob, dict[str, Any]], None]) -> Iterator[tuple[CellJob, dict[str, Any]]]:
    """Run ``jobs`` in plan order, one at a time per slot, yielding ``(job, record)`` as each finishes.

    Each slot has a thread that takes the next job and calls ``run_one(job, slot, emit, stop)``; the
    calling thread alone calls ``on_event`` (``{"event": "start", "device": ..., "slot": ...}`` when a cell starts,
    then the cell's own events), so the view needs no locks. A ``run_one`` that raises fails only its
    cell. Closing the generator (Ctrl-C) sets ``stop``, which ``run_one`` must honour by ending its
    cell, and waits for the slots to come back; the records already yielded are the run's.
    """
    waiting = collections.deque(jobs)
    take = threading.Lock()
    stop = threading.Event()
    out: queue.Queue[tuple[str, CellJob, Any]] = queue.Queue()

    def serve(slot: Slot) -> None:
        while not stop.is_set():
            with take:
                if not waiting:
                    return
                job = waiting.popleft()
            out.put(("start", job, {"event": "start", "device": slot.device, "slot": slot.label}))
            try:
                record = run_one(job, slot, lambda event, job=job: out.put(("event", job, event)), stop)
            except Exception as exc:  # a fault in one slot's runner must not stop the others
                record = job.failed(f"{type(exc).__name__}: {exc}", slot.device)
            out.put(("done", job, record))

    workers = [threading.Thread(target=serve, args=(slot,), name=f"tbench-slot-{slot.label}", daemon=True)
               for slot in list(slots)[:len(jobs)]]
    for worker in workers:
        worker.start()
    remaining = len(jobs)
    try:
        while remaining:
            try:
                kind, job, payload = out.get(timeout=0.2)  # a timeout keeps Ctrl-C deliverable here
            except queue.Empty:
                if not any(w.is_alive() for w in workers) and out.empty():
                    break  # every slot ended without a record (cannot happen unless a worker died)
                continue
            if kind == "done":
                remaining -= 1
                yield job, payload
            else:
                on_event(job, payload)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
