"""LN tuning: train only the normalisation layers (their gains and biases); every other weight frozen."""

from tuning_bench import Option, hookimpl
from tuning_bench.api.method import SELECTIVE, learning_rate, peft_task_type
from tuning_bench.api.peft_method import PeftMethod


def norm_module_names(model) -> list[str]:
    """The distinct last names of the model's normalisation layers (LayerNorm, RMSNorm, ...):
    input_layernorm, post_attention_layernorm and norm on Llama, LayerNorm on BERT."""
    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                   if name and type(module).__name__.endswith("Norm")})


class LNTuning(PeftMethod):
    """PEFT's LN tuning: a trainable copy of each normalisation layer replaces it, so the saved state is
    those layers alone and the original ones stay untouched."""

    name = "ln-tuning"
    family = SELECTIVE
    in_default_run = False  # a variant: `--methods ln-tuning` (the default run keeps its set and time budget)
    description = "LN tuning: train only the normalisation layers' gains (and biases, where they have them)."
    paper = "Qi et al. 2022, Parameter-Efficient Tuning on Layer Normalization for Pre-trained Language Models"
    decoding = "engine"  # the model's own forward (layers wrapped in place): it takes the KV cache
    options = (
        Option("target_modules", list, None, "Names of the normalisation layers to train; empty means every "
               "one the model has (found by class name, *Norm).", nullable=True,
               source="Qi et al. 2022 tune every LayerNorm; PEFT's Llama default is the same three names"),
        learning_rate(3e-3, "tbench lora's swept rate (results/sweep-lr-cpu), not swept for LN tuning: PEFT "
                            "method_comparison MetaMathQA trains ln_tuning at LoRA's rate (1e-4)"),
    )

    def not_applicable_to(self, loaded, task, config):
        if not (config["target_modules"] or norm_module_names(loaded.model)):
            return f"{loaded.name} has no normalisation layers (no module class named *Norm) to tune"
        return None

    def peft_config(self, loaded, task, config):
        from peft import LNTuningConfig  # imported here: listing methods must not load torch

        # Named from the model itself: PEFT has defaults for Llama but none for BERT.
        return LNTuningConfig(task_type=peft_task_type(loaded),
                              target_modules=config["target_modules"] or norm_module_names(loaded.model))


@hookimpl
def register_methods(register):
    register(LNTuning())
