"""Prefix tuning: trainable key/value prefixes in every attention layer; the model stays frozen."""

from tuning_bench import Option, hookimpl
from tuning_bench.api.method import SOFT_PROMPT, learning_rate, peft_task_type
from tuning_bench.api.peft_method import PeftMethod


class PrefixTuning(PeftMethod):
    name = "prefix"
    family = SOFT_PROMPT
    description = "Prefix tuning: learn per-layer key/value prefixes, optionally through an MLP; model frozen."
    paper = "Li & Liang 2021, Prefix-Tuning: Optimizing Continuous Prompts for Generation"
    options = (
        Option("num_virtual_tokens", int, 20, "Prefix length (key/value positions per layer).", minimum=1, maximum=512,
               source="Li & Liang 2021 use 10 (table-to-text) to 200 (summarization); 20 matches prompt tuning here"),
        Option("prefix_projection", bool, True, "Reparameterize the prefix through a two-layer MLP while training.",
               source="Li & Liang 2021, sec. 4.3: direct optimisation is unstable; the MLP reparameterization fixes it"),
        Option("encoder_hidden_size", int, 512, "Hidden size of the reparameterization MLP.", minimum=1, maximum=16384,
               source="Li & Liang 2021 (512)"),
        learning_rate(3e-3, "results/sweep-lr-cpu: on SmolLM2-135M 1e-2 (PEFT's prefix-tuning guide) diverged, "
                            "3.3e-3 was best; Li & Liang 2021 used 5e-5 over many epochs; "
                            "trains without diverging at 48 and 240 steps (results/lr-5x-cpu)"),
    )

    def peft_config(self, loaded, task, config):
        from peft import PrefixTuningConfig  # imported here: listing methods must not load torch

        return PrefixTuningConfig(
            task_type=peft_task_type(loaded),
            num_virtual_tokens=config["num_virtual_tokens"],
            prefix_projection=config["prefix_projection"],
            encoder_hidden_size=config["encoder_hidden_size"],
        )


@hookimpl
def register_methods(register):
    register(PrefixTuning())
