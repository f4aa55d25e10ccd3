"""tuning_bench: measure which way of adapting a language model fits a task.

The public interface for plugin authors is re-exported here: ``hookimpl`` to mark hook
implementations, and the ``Method``, ``Task`` and ``ModelSource`` interfaces with ``Option``.
"""

from tuning_bench.hookspecs import hookimpl
from tuning_bench.kinds import ModelKind, TaskKind
from tuning_bench.method import Method
from tuning_bench.model import LoadedModel, ModelSource
from tuning_bench.options import Option
from tuning_bench.task import Task

__version__ = "0.1.0"

__all__ = [
    "hookimpl",
    "Method",
    "ModelKind",
    "ModelSource",
    "LoadedModel",
    "Option",
    "Task",
    "TaskKind",
    "__version__",
]
