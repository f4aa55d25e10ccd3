"""IA3: trainable vectors that rescale keys, values and feed-forward activations; weights frozen."""

from tuning_bench import Option, hookimpl
from tuning_bench.api.method import ADAPTER, learning_rate, peft_task_type
from tuning_bench.api.peft_method import PeftMethod


class IA3(PeftMethod):
    name = "ia3"
    family = ADAPTER
    description = "IA3: learn scaling vectors for keys, values and feed-forward activations; weights frozen."
    paper = "Liu et al. 2022, Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than In-Context Learning"
    decoding = "engine"  # a forward that takes the KV cache: the engine's loop, finished rows leave the batch
    options = (
        Option("target_modules", list, None, "Modules to rescale; empty means PEFT's default for the architecture.",
               nullable=True, source="Liu et al. 2022: keys, values and the feed-forward output"),
        Option("feedforward_modules", list, None, "Which of target_modules are feed-forward layers; empty means "
               "PEFT's default.", nullable=True, source="PEFT defaults per architecture"),
        learning_rate(9e-3, "results/sweep-lr-cpu: best of 1e-3/3e-3/9e-3 for a 12-step budget; Liu et al. 2022 "
                            "(T-Few) used 3e-3 with Adafactor over 1000 steps; "
                            "trains without diverging at 48 and 240 steps (results/lr-5x-cpu)"),
    )

    def peft_config(self, loaded, task, config):
        from peft import IA3Config  # imported here: listing methods must not load torch

        return IA3Config(
            task_type=peft_task_type(loaded),
            target_modules=config["target_modules"] or None,
            feedforward_modules=config["feedforward_modules"] or None,
        )


@hookimpl
def register_methods(register):
    register(IA3())
