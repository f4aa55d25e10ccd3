"""What runs on a Ray worker for ``--executor ray``: one cell in its own process, its files sent back.

A Ray task is a reused worker process, so the cell does not run in it: the worker starts the cell as
the local executor does (``LocalExecutor.run_one``: a fresh process from a fork server, which dies
with the worker), so each cell's memory figures stay its own. The cell writes into a scratch folder on
the worker's node; its files (the kept trained state, an error log) come back with the record, and the
driver writes them where the local executor would have. No filesystem is shared with the driver.

This module imports no Ray: the driver (``run.ray_executor``) wraps these functions as Ray tasks and actors.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from tuning_bench.run.cellprocess import CELL_LOCK
from tuning_bench.run.executor import CellJob, LocalExecutor
from tuning_bench.run.slots import Slot

# Ray sets this per task to the GPUs it gave the task; the cell process must see the same.
GPU_VARIABLE = "CUDA_VISIBLE_DEVICES"


class EventMailbox:
    """A Ray actor holding the cells' progress events until the driver collects them.

    Workers call ``put`` without waiting for it; the driver calls ``drain`` a few times a second. Each
    event carries its cell's key and attempt, so events of an attempt that died are told apart.
    """

    def __init__(self) -> None:
        self._events: list[tuple[str, int, dict[str, Any]]] = []

    def put(self, key: str, attempt: int, event: dict[str, Any]) -> None:
        self._events.append((key, attempt, event))

    def drain(self) -> list[tuple[str, int, dict[str, Any]]]:
        events, self._events = self._events, []
        return events


@contextlib.contextmanager
def claimed_cores(count: int) -> Iterator[tuple[int, ...] | None]:
    """Cores of this node for one cell: ``count`` of them, not held by another cell here (None: all of them).

    Ray counts CPUs per task but does not say which cores; cells on one node agree through a lock file
    per core (released when the process holding it ends, however it ends), so that two cells never pin
    the same core, as with ``--jobs``. Should Ray have been told of more CPUs than the node has cores,
    a cell takes cores already held rather than run with fewer threads than asked.
    """
    cores = sorted(os.sched_getaffinity(0))
    if count >= len(cores):
        yield None  # the whole node: unpinned, one thread per core, as a local run
        return
    folder = Path(tempfile.gettempdir()) / f"tbench-cores-{os.getuid()}"
    folder.mkdir(exist_ok=True)
    held = []
    try:
        for core in cores:
            if len(held) == count:
                break
            handle = open(folder / f"core-{core}.lock", "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            held.append((core, handle))
        chosen = [core for core, _ in held]
        chosen += [core for core in cores if core not in chosen][:count - len(chosen)]
        yield tuple(sorted(chosen))
    finally:
        for _, handle in held:
            handle.close()


def read_cell_files(cell_dir: Path) -> dict[str, bytes]:
    """Every file the cell wrote (relative POSIX path -> bytes), without the lock file."""
    if not cell_dir.is_dir():
        return {}
    return {path.relative_to(cell_dir).as_posix(): path.read_bytes()
            for path in sorted(cell_dir.rglob("*")) if path.is_file() and path.name != CELL_LOCK}


def write_cell_files(cell_dir: Path, files: dict[str, bytes]) -> None:
    """Write a cell's files, sent back from its worker, into its cell folder on the driver.

    What the cell wrote replaces what an earlier run left under the same top-level names (its ``state``
    folder, ``error.log``), as a local cell replaces its state folder.
    """
    import shutil

    relative = [PurePosixPath(name) for name in files]
    for path in relative:
        if path.is_absolute() or ".." in path.parts or not path.parts:
            raise ValueError(f"a cell sent back a file outside its folder: {path}")
    for top in sorted({path.parts[0] for path in relative}):
        target = cell_dir / top
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    for path, data in zip(relative, files.values()):
        target = cell_dir.joinpath(*path.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def version_problem(driver: dict[str, Any], node: str) -> str | None:
    """Why this node cannot run the driver's cells (other package versions), or None.

    The cache key holds the driver's versions; a cell run with others would be stored under a key
    that does not describe it.
    """
    from tuning_bench import __version__
    from tuning_bench.engine.measure import package_versions

    here = package_versions() | {"tuning_bench": __version__}
    wanted = driver["versions"]
    differ = [f"{name} {here.get(name)} (driver: {version})" for name, version in wanted.items() if here.get(name) != version]
    if not differ:
        return None
    return (f"node {node} runs {', '.join(differ)}; install the same versions on every node of the Ray cluster "
            "(the cache key holds the driver's)")


@contextlib.contextmanager
def main_script_hidden() -> Iterator[None]:
    """Keep multiprocessing from running the Ray worker's script again in each cell process.

    A process started from a fork server runs its parent's ``__main__`` script again (as ``__mp_main__``)
    when that module has a ``__file__``; in a Ray worker it is Ray's worker script, which would import
    Ray into every cell process, and into its memory figures. Without a ``__file__`` it is left alone.
    """
    main = sys.modules["__main__"]
    script = main.__dict__.pop("__file__", None)
    try:
        yield
    finally:
        if script is not None:
            main.__file__ = script


def run_cell_task(spec: dict[str, Any], key: str, cores: int, driver: dict[str, Any], sink: Any,
                  attempt: int) -> dict[str, Any]:
    """The body of a cell's Ray task: run the cell in its own process here and return what the driver needs.

    ``cores``: how many cores the cell is pinned to (``claimed_cores``); ``driver``: the driver's node id,
    token cache folder and package versions; ``sink``: the ``EventMailbox`` actor for progress events.
    Returns the record, the cell's files, the node's name and whether the cell's process died (as
    opposed to a cell that failed on its own: only a death is worth another attempt).
    """
    import ray

    from tuning_bench.engine.cell import CellSpec

    node = socket.gethostname()

    def emit(event: dict[str, Any]) -> None:
        sink.put.remote(key, attempt, event)

    context = ray.get_runtime_context()
    gpus = [str(i) for i in context.get_accelerator_ids().get("GPU", [])]
    device = spec["device"]
    if gpus and device == "cuda":
        device = f"cuda:{gpus[0]}" if len(gpus) == 1 else device  # the node's own index, as --devices records it
    emit({"event": "start", "device": device, "slot": node, "worker_pid": os.getpid()})
    job = CellJob(CellSpec.from_dict(spec), key, Path(), None)
    problem = version_problem(driver, node)
    if problem:
        return {"record": job.failed(problem, device), "files": {}, "node": node, "died": False}
    # The driver's token cache where the driver's folder is at hand (same node); a node's own elsewhere.
    same_node = context.get_node_id() == driver["node_id"] and driver["token_cache"]
    token_cache = Path(driver["token_cache"]) if same_node else Path(tempfile.gettempdir()) / f"tbench-token-cache-{os.getuid()}"
    with tempfile.TemporaryDirectory(prefix="tbench-cell-") as scratch, claimed_cores(cores) as pinned:
        job = CellJob(job.spec, key, Path(scratch) / key, token_cache)
        env = {GPU_VARIABLE: os.environ.get(GPU_VARIABLE)}
        slot = Slot(spec["device"], pinned)
        with main_script_hidden():
            record = LocalExecutor([slot], env=env).run_one(job, slot, emit)
        # A record without cell_seconds did not come from run_cell: the cell's process died before it could send one.
        died = record.get("status") == "failed" and "cell_seconds" not in record
        if gpus:
            record["device"] = device
        return {"record": record, "files": read_cell_files(job.cell_dir), "node": node, "died": died}
