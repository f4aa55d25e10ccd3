"""Hook specifications. A plugin is a module with functions marked ``@hookimpl``.

Example (a complete third-party plugin module)::

    from tuning_bench import Method, Option, hookimpl
    from tuning_bench.api.method import learning_rate

    class EmbeddingTuning(Method):
        name = "embedding-tuning"
        description = "Train only the input embeddings."
        options = (learning_rate(1e-3, "where this default comes from"),)

        def adapt(self, loaded, task, config):
            loaded.model.requires_grad_(False)
            loaded.model.get_input_embeddings().weight.requires_grad_(True)
            return loaded.model

    @hookimpl
    def register_methods(register):
        register(EmbeddingTuning())

Register it under the entry-point group ``tuning_bench`` in the plugin's pyproject.toml::

    [project.entry-points.tuning_bench]
    embedding_tuning = "tbench_embedding_tuning"
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("tuning_bench")
hookimpl = pluggy.HookimplMarker("tuning_bench")


@hookspec
def register_methods(register):
    """Register methods: call ``register(method)`` with a ``tuning_bench.Method`` for each."""


@hookspec
def register_tasks(register):
    """Register tasks: call ``register(task)`` with a ``tuning_bench.Task`` for each."""


@hookspec
def register_models(register):
    """Register model sources: call ``register(source)`` with a ``tuning_bench.ModelSource`` for each."""


@hookspec
def register_metrics(register):
    """Register metrics as plain functions: ``register(name, function, higher_is_better=True, per_example=True)``.

    A per-example metric is ``function(prediction, reference) -> float``, averaged over the examples; a
    corpus metric (``per_example=False``) is ``function(predictions, references) -> float``. Tasks name
    it in ``metrics`` like a shipped metric. A corpus metric that is a function of per-example counts
    may also pass ``statistics=(prediction, reference) -> list of numbers`` and
    ``from_statistics=(array of summed rows) -> array of scores``, so the paired bootstrap can resample
    it (the built-in chrF does; see ``tuning_bench_plugins.metrics``).
    """


@hookspec
def register_commands(cli):
    """Add commands to the ``tbench`` click group passed as ``cli``."""
