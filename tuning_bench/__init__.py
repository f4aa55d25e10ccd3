"""tuning_bench: measure which way of adapting a language model fits a task.

The public interface for plugin authors is re-exported here: ``hookimpl`` to mark hook
implementations, and the ``Method``, ``Task`` and ``ModelSource`` interfaces with ``Option``.
"""

from tuning_bench.api.hookspecs import hookimpl
from tuning_bench.api.kinds import ModelKind, TaskKind
from tuning_bench.api.method import Method
from tuning_bench.api.model import LoadedModel, ModelSource
from tuning_bench.api.options import Option
from tuning_bench.api.task import Task

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
