"""The output folder of a run: an exclusive lock while a run writes there, and the refusal to write into a
folder of the user's that is not a tbench run."""

from __future__ import annotations

import errno
import fcntl
import json
import os
from pathlib import Path
from typing import Any

from tuning_bench.api.errors import UsageError
from tuning_bench.run.records import SCHEMA


class OutputLock:
    """An exclusive lock on the output directory, so two runs never write the same results."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.handle = None

    def __enter__(self) -> OutputLock:
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            probe = self.out_dir / ".tbench-write-test"
            probe.write_text("")
            probe.unlink()
            self.handle = open(self.out_dir / ".tbench.lock", "a+")
        except OSError as exc:
            raise UsageError(f"cannot write to output directory {self.out_dir} ({exc.strerror}); choose another with --out") from None
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            self.handle.seek(0)
            holder = self.handle.read().strip() or "unknown"
            self.handle.close()
            raise UsageError(f"output directory {self.out_dir} is in use by another tbench run (pid {holder}); "
                             "wait for it to finish or choose another --out") from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(str(os.getpid()))
        self.handle.flush()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self.handle:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None

    def remove_if_empty(self) -> None:
        """Release the lock and remove the folder if nothing but the lock file is in it (a run that never started)."""
        self.__exit__()
        try:
            (self.out_dir / ".tbench.lock").unlink()
            self.out_dir.rmdir()
        except OSError:
            pass  # something else is in it now: keep it


OUT_OVERWRITE_FLAG = "--out-overwrite"


def is_tbench_run(out_dir: Path) -> bool:
    """Whether a folder holds a tbench run: its lock file, its cells/ folder or a tbench results.json."""
    if (out_dir / ".tbench.lock").is_file() or (out_dir / "cells").is_dir():
        return True
    try:
        return json.loads((out_dir / "results.json").read_text(encoding="utf-8")).get("schema") == SCHEMA
    except (OSError, ValueError, AttributeError):
        return False


def check_output_folder(out_dir: Path, overwrite: bool = False) -> None:
    """Refuse a non-empty --out that is not a tbench run: its report.md or results.csv would be replaced."""
    if overwrite or not out_dir.is_dir() or is_tbench_run(out_dir):
        return
    try:
        entries = sorted(p.name for p in out_dir.iterdir())
    except OSError:
        return  # OutputLock reports an unreadable or unwritable folder
    if entries:
        shown = ", ".join(entries[:3]) + (", …" if len(entries) > 3 else "")
        raise UsageError(f"output directory {out_dir} is not empty ({shown}) and is not a tbench run; "
                         f"choose an empty or new --out, or pass {OUT_OVERWRITE_FLAG} to write into it")
