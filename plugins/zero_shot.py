"""Zero-shot prompting: the task's instruction in front of each input, and nothing else."""

from tuning_bench import Method, ModelKind, hookimpl
from tuning_bench.api.method import NO_WEIGHT_CHANGE, freeze


class ZeroShot(Method):
    name = "zero-shot"
    family = NO_WEIGHT_CHANGE
    description = "Hard-prompt baseline: the task's instruction before each input; no training."
    paper = "Radford et al. 2019, Language Models are Unsupervised Multitask Learners"
    decoding = "engine"  # a forward that takes the KV cache: the engine's loop, finished rows leave the batch
    trains = False
    model_kinds = frozenset({ModelKind.CAUSAL_LM})  # an encoder's new classification head cannot read instructions

    def adapt(self, loaded, task, config):
        return freeze(loaded.model)


@hookimpl
def register_methods(register):
    register(ZeroShot())
