"""Full fine-tuning: every weight of the model is trained."""

from tuning_bench import Method, hookimpl
from tuning_bench.api.method import FULL, FULL_MODEL, learning_rate


class FineTune(Method):
    name = "finetune"
    family = FULL
    description = "Full fine-tuning: train every weight of the model."
    paper = "Howard & Ruder 2018; Devlin et al. 2019 (fine-tuning pretrained language models)"
    decoding = "engine"  # a forward that takes the KV cache: the engine's loop, finished rows leave the batch
    options = (
        learning_rate(1.5e-4, "results/sweep-lr-cpu: best of 1.7e-5/5e-5/1.5e-4 for a 12-step budget; Devlin et al. "
                              "2019 use 2e-5 to 5e-5 over several epochs; "
                              "trains without diverging at 48 and 240 steps (results/lr-5x-cpu)"),
    )

    def not_applicable_to(self, loaded, task, config):
        if loaded.quantized:
            return "full fine-tuning trains every weight, and a quantized base (--base-quant) stores them as integers that take no gradient"
        return None

    def adapt(self, loaded, task, config):
        for parameter in loaded.model.parameters():
            parameter.requires_grad_(True)
        return loaded.model

    def save_state(self, adapted, directory):
        adapted.save_pretrained(directory)  # the whole model, loadable without tbench
        return FULL_MODEL

    def load_state(self, loaded, task, config, directory):
        return type(loaded.model).from_pretrained(directory)


@hookimpl
def register_methods(register):
    register(FineTune())
