"""The shipped metrics, registered through the same ``register_metrics`` hook a third party uses.

The functions live in ``tuning_bench.metrics`` (core: the task-file checks know their names and the
statistics code runs without plugins); this module only registers them, and reads as the example of
a metric plugin. chrF and BLEU are sacrebleu's; as corpus metrics they also give their per-pair
statistics and the score from summed statistics, so the paired bootstrap can resample them.
"""

from tuning_bench import hookimpl
from tuning_bench.metrics import json_objects, labels, sacrebleu_metrics, text


@hookimpl
def register_metrics(register):
    register("rouge_l", text.rouge_l)
    register("chrf", sacrebleu_metrics.chrf, per_example=False,
             statistics=sacrebleu_metrics.chrf_statistics, from_statistics=sacrebleu_metrics.chrf_from_statistics)
    register("bleu", sacrebleu_metrics.bleu, per_example=False,
             statistics=sacrebleu_metrics.bleu_statistics, from_statistics=sacrebleu_metrics.bleu_from_statistics)
    register("accuracy", labels.accuracy)
    register("macro_f1", labels.macro_f1, per_example=False)
    register("json_exact_match", json_objects.json_exact_match)
    register("json_field_f1", json_objects.json_field_f1)
