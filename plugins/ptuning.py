"""P-tuning: virtual tokens produced by a small trainable prompt encoder; the model stays frozen."""

from tuning_bench import Option, hookimpl
from tuning_bench.api.method import SOFT_PROMPT, learning_rate, peft_task_type
from tuning_bench.api.peft_method import PeftMethod


class PTuning(PeftMethod):
    name = "ptuning"
    family = SOFT_PROMPT
    description = "P-tuning: virtual-token embeddings from a trainable MLP prompt encoder; model frozen."
    paper = "Liu et al. 2021, GPT Understands, Too"
    decoding = "soft-prompt"  # virtual tokens in front of the input: the engine's exact decoding loop
    options = (
        Option("num_virtual_tokens", int, 20, "Number of virtual tokens.", minimum=1, maximum=512,
               source="same length as prompt tuning here, for a like-for-like comparison"),
        Option("encoder_hidden_size", int, 256, "Hidden size of the MLP prompt encoder.", minimum=1, maximum=16384,
               source="PEFT P-tuning guide (128-256)"),
        learning_rate(1e-3, "PEFT P-tuning guide (1e-3 with AdamW); results/sweep-lr-cpu found 3.3e-4 to 3e-3 "
                            "within noise of each other; "
                            "trains without diverging at 48 and 240 steps (results/lr-5x-cpu)"),
    )

    def peft_config(self, loaded, task, config):
        from peft import PromptEncoderConfig  # imported here: listing methods must not load torch

        return PromptEncoderConfig(
            task_type=peft_task_type(loaded),
            num_virtual_tokens=config["num_virtual_tokens"],
            encoder_reparameterization_type="MLP",
            encoder_hidden_size=config["encoder_hidden_size"],
        )


@hookimpl
def register_methods(register):
    register(PTuning())
