"""LayerNorm tuning as a tuning_bench plugin: train only the normalization layers' weights.

Qi et al. 2022, Parameter-Efficient Tuning on Layer Normalization for Pre-trained Language Models.
Works on Llama-style models (RMSNorm) and BERT-style encoders (LayerNorm) alike.
"""

import torch

from tuning_bench import Method, Option, hookimpl
from tuning_bench.api.method import learning_rate


def _is_norm(module: torch.nn.Module) -> bool:
    # Llama's RMSNorm is its own class in transformers; match by name rather than import every variant.
    return isinstance(module, torch.nn.LayerNorm) or type(module).__name__.endswith("RMSNorm")


class NormTuning(Method):
    name = "normtune"
    description = "LayerNorm tuning: train only the normalization layers' weights (and a task head)."
    paper = "Qi et al. 2022, Parameter-Efficient Tuning on Layer Normalization"
    options = (
        Option("train_head", bool, True, "Also train a sequence-classification head, if the model has one.",
               source="Qi et al. 2022 train the task head with the norms"),
        learning_rate(1e-3, "Qi et al. 2022 (1e-3 range for LN parameters)"),
    )

    def adapt(self, loaded, task, config):
        model = loaded.model
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        for module in model.modules():
            if _is_norm(module):
                for parameter in module.parameters(recurse=False):
                    parameter.requires_grad_(True)
        head = getattr(model, "classifier", None) or getattr(model, "score", None)
        if config["train_head"] and isinstance(head, torch.nn.Module):
            for parameter in head.parameters():
                parameter.requires_grad_(True)
        return model


@hookimpl
def register_methods(register):
    register(NormTuning())
