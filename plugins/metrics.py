"""The shipped metrics, registered through the same ``register_metrics`` hook a third party uses.

The functions live in ``tuning_bench.metrics`` (core: the task-file checks know their names and the
statistics code runs without plugins); this module only registers them, and reads as the example of
a metric plugin. chrF also gives its per-pair statistics and the score from summed statistics, so
the paired bootstrap can resample it.
"""

from tuning_bench import hookimpl
from tuning_bench.metrics import json_objects, labels, text


@hookimpl
def register_metrics(register):
    register("rouge_l", text.rouge_l)
    register("chrf", text.chrf, per_example=False,
             statistics=text.chrf_statistics, from_statistics=text.chrf_from_statistics)
    register("accuracy", labels.accuracy)
    register("macro_f1", labels.macro_f1, per_example=False)
    register("json_exact_match", json_objects.json_exact_match)
    register("json_field_f1", json_objects.json_field_f1)
