"""Few-shot prompting (in-context learning): k worked examples from the train split before each input."""

from tuning_bench import Method, ModelKind, Option, TaskKind, hookimpl
from tuning_bench.api.method import NO_WEIGHT_CHANGE, freeze, sample_examples


class FewShot(Method):
    name = "few-shot"
    family = NO_WEIGHT_CHANGE
    description = "Hard-prompt baseline: instruction plus k worked examples from the train split; no training."
    paper = "Brown et al. 2020, Language Models are Few-Shot Learners"
    decoding = "engine"  # a forward that takes the KV cache: the engine's loop, finished rows leave the batch
    trains = False
    model_kinds = frozenset({ModelKind.CAUSAL_LM})
    options = (
        Option("k", int, 3, "Worked examples shown before each input.", minimum=1, maximum=64,
               source="Brown et al. 2020 use k up to the context size; 3 keeps a 2-core CPU run short"),
        Option("balanced", bool, True, "For classification, draw the examples round-robin over labels.",
               source="Zhao et al. 2021 (Calibrate Before Use): unbalanced shots bias the prediction"),
    )

    def adapt(self, loaded, task, config):
        return freeze(loaded.model)

    def context_examples(self, task, config, seed):
        train = task.splits()["train"]  # never the evaluation split
        k = config["k"]
        if task.kind is TaskKind.CLASSIFICATION and config["balanced"] and task.labels:
            by_label = {label: [ex for ex in train if task.render_target(ex) == label] for label in task.labels}
            pools = {label: sample_examples(pool, min(len(pool), k), seed) for label, pool in by_label.items() if pool}
            picked = []
            while len(picked) < k and any(pools.values()):
                for label in task.labels:
                    if pools.get(label) and len(picked) < k:
                        picked.append(pools[label].pop(0))
            return picked
        return sample_examples(train, k, seed)


@hookimpl
def register_methods(register):
    register(FewShot())
