"""A method as a third party would write it from the README: BitFit, only the public interface.

Ben Zaken et al. 2022, BitFit: Simple Parameter-efficient Fine-tuning for Transformer-based Masked
Language-models. Llama-style models have no biases; there it tunes the norm weights instead.
"""

from tuning_bench import Method, Option, hookimpl
from tuning_bench.api.method import learning_rate


def _biases(model):
    return [p for name, p in model.named_parameters() if name.endswith(".bias")]


def _norm_weights(model):
    return [p for name, p in model.named_parameters() if "norm" in name.lower() and name.endswith(".weight")]


class BitFit(Method):
    name = "bitfit"
    description = "BitFit: train only the bias terms (norm weights on a model without biases)."
    paper = "Ben Zaken et al. 2022, BitFit"
    options = (
        Option("norms_when_no_bias", bool, True, "Tune norm weights when the model has no bias terms.",
                source="this plugin's choice"),
        learning_rate(1e-3, "Ben Zaken et al. 2022 (1e-4 to 1e-3)"),
    )

    def _targets(self, model, config):
        return _biases(model) or (_norm_weights(model) if config["norms_when_no_bias"] else [])

    def not_applicable_to(self, loaded, task, config):
        if not self._targets(loaded.model, config):
            return f"{loaded.name} has no bias terms to tune (set bitfit.norms_when_no_bias=true to tune its norms)"
        return None

    def adapt(self, loaded, task, config):
        loaded.model.requires_grad_(False)
        for parameter in self._targets(loaded.model, config):
            parameter.requires_grad_(True)
        return loaded.model


@hookimpl
def register_methods(register):
    register(BitFit())
