"""BitFit: train only the model's bias terms; every weight matrix frozen."""

from tuning_bench import Method, Option, hookimpl
from tuning_bench.api.method import SELECTIVE, learning_rate


def _biases(model):
    return [p for name, p in model.named_parameters() if name.endswith(".bias")]


def _norm_weights(model):
    return [p for name, p in model.named_parameters() if "norm" in name.lower() and name.endswith(".weight")]


class BitFit(Method):
    """Not a PEFT method: it sets ``requires_grad`` on the model's own bias parameters, so the saved
    state is those tensors (Method's default). Llama-style models (SmolLM2) have no biases at all; there
    the cell is not applicable unless ``norms_when_no_bias`` asks for the norm gains instead (which is
    what ``ln-tuning`` trains)."""

    name = "bitfit"
    family = SELECTIVE
    in_default_run = False  # not applicable to the default model, which has no bias terms
    description = "BitFit: train only the bias terms (not applicable to a model without biases, such as Llama)."
    paper = "Ben Zaken et al. 2022, BitFit: Simple Parameter-efficient Fine-tuning for Transformer-based Masked Language-models"
    decoding = "engine"  # the model itself, unwrapped: its forward takes the KV cache
    options = (
        Option("norms_when_no_bias", bool, False, "Tune the norm weights when the model has no bias terms.",
               source="off: BitFit tunes biases only (Ben Zaken et al. 2022); on is this plugin's fallback"),
        learning_rate(1e-3, "Ben Zaken et al. 2022, sec. 3: best rates 1e-4 to 1e-3 (biases need the high end); "
                            "not swept here"),
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
