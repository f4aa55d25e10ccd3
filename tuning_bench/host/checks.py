"""Checks on what a plugin registers, run when it registers: each returns the problem, or None."""

from __future__ import annotations

from collections.abc import Mapping

from tuning_bench.api.errors import UsageError
from tuning_bench.api.method import FAMILIES, Method
from tuning_bench.api.task import Task


DECODINGS = ("generate", "engine", "unpadded", "soft-prompt")


def method_problem(method: Method) -> str | None:
    """A trainable method must declare its learning rate (the trainer and ``--sweep lr`` read it), and
    every method a decoding the engine knows and a known family."""
    if method.trains and not any(option.name == "learning_rate" for option in method.options):
        return (f"method '{method.name}' trains but has no learning_rate option; add "
                "learning_rate(DEFAULT, SOURCE) from tuning_bench.api.method to its options, or set trains = False")
    if method.decoding not in DECODINGS:
        return (f"method '{method.name}' declares decoding = {method.decoding!r}; use one of "
                f"{', '.join(DECODINGS)} (see tuning_bench.api.method.Method)")
    if method.family not in FAMILIES:
        return (f"method '{method.name}' declares family = {method.family!r}; use one of "
                f"{', '.join(repr(f) for f in FAMILIES)} (see tuning_bench.api.method.Method)")
    return None


def task_problem(task: Task, registered_metrics: Mapping[str, bool]) -> str | None:
    """A Python task gets the checks a YAML task file's keys get (templates, labels, metrics)."""
    from tuning_bench.taskfiles.taskfile import check_task

    try:
        check_task(task, f"task '{getattr(task, 'name', '?')}'", registered_metrics)
    except UsageError as exc:
        return str(exc)
    except Exception as exc:  # e.g. a field of the wrong type that the checks cannot even read
        return f"task '{getattr(task, 'name', '?')}' cannot be checked ({type(exc).__name__}: {exc})"
    return None
