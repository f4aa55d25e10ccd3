"""LayerNorm tuning as a tuning_bench plugin: train only the normalization layers' weights.

Qi et al. 2022, Parameter-Efficient Tuning on Layer Normalization for Pre-trained Language Models.
Works on Llama-style models (RMSNorm) and BERT-style encoders (LayerNorm) alike. The state saved is
the tensors it trains (tuning_bench's default), so a run reports their size, not the model's.
"""

import torch

from tuning_bench import Method, hookimpl
from tuning_bench.api.method import learning_rate


def _norm_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    # Llama's RMSNorm is its own class in transformers; match by name rather than import every variant.
    return [p for m in model.modules() if isinstance(m, torch.nn.LayerNorm) or type(m).__name__.endswith("RMSNorm")
            for p in m.parameters(recurse=False)]


class NormTuning(Method):
    name = "normtune"
    description = "LayerNorm tuning: train only the normalization layers' weights."
    paper = "Qi et al. 2022, Parameter-Efficient Tuning on Layer Normalization"
    options = (learning_rate(1e-3, "Qi et al. 2022 (1e-3 range for LN parameters)"),)

    def not_applicable_to(self, loaded, task, config):
        if not _norm_parameters(loaded.model):
            return f"{loaded.name} has no LayerNorm or RMSNorm layers to tune"
        return None

    def adapt(self, loaded, task, config):
        # An encoder's classification head is trained by tuning_bench itself, for every method.
        model = loaded.model
        model.requires_grad_(False)
        for parameter in _norm_parameters(model):
            parameter.requires_grad_(True)
        return model


@hookimpl
def register_methods(register):
    register(NormTuning())
