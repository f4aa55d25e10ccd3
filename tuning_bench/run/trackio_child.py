"""The process that writes one cell's tracker run to trackio (``--log-to trackio``); see ``TrackioTracker``.

trackio reads its store's folder (``TRACKIO_DIR``) once, when it is imported, into several of its modules,
and keeps the current run, a sender thread and exit hooks in the process. A short child process per cell,
started with ``TRACKIO_DIR`` set, gives each tbench run its own store and keeps all of that, and trackio's
printing, out of the run's own process. It reads one JSON object on stdin::

    {"project": str, "name": str, "group": str, "config": {...}, "steps": [[step, {tag: value}], ...]}

and exits 0 once trackio has written the run; on an error its last line of stderr says what went wrong.
"""

from __future__ import annotations

import contextlib
import json
import sys
import warnings


def write(payload: dict) -> None:
    """Log ``payload`` as one trackio run in the local store (or the Space/server trackio's variables name)."""
    import trackio

    # Hardware sampling would add system metrics on a timer; a cell's run is written after the fact.
    run = trackio.init(project=payload["project"], name=payload["name"], group=payload["group"],
                       config=payload["config"], auto_log_cpu=False, auto_log_gpu=False, embed=False)
    try:
        for step, values in payload["steps"]:
            run.log(values, step=step)
    finally:
        run.finish()


def main() -> int:
    payload = json.load(sys.stdin)
    # trackio reports a failed write (a folder it cannot create, a locked database) as a UserWarning and
    # goes on; here that must fail the cell's logging, or the ledger would mark a run that was never stored.
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            write(payload)
            problems = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
            if problems:
                raise RuntimeError(problems[0])
        except Exception as exc:
            print(f"{type(exc).__name__}: {exc}".replace("\n", " "), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
