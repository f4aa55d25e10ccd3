"""LoRA: trainable low-rank updates to chosen weight matrices; the original weights stay frozen."""

from tuning_bench import Option, hookimpl
from tuning_bench.api.method import ADAPTER, learning_rate, peft_task_type
from tuning_bench.api.peft_method import PeftMethod


class LoRA(PeftMethod):
    name = "lora"
    family = ADAPTER
    description = "LoRA: learn rank-r updates B·A to attention projections; original weights frozen."
    paper = "Hu et al. 2021, LoRA: Low-Rank Adaptation of Large Language Models"
    decoding = "engine"  # a forward that takes the KV cache: the engine's loop, finished rows leave the batch
    options = (
        Option("r", int, 8, "Rank of the update.", minimum=1, maximum=1024,
               source="Hu et al. 2021, sec. 7.2: r of 4-8 suffices on W_q and W_v"),
        Option("alpha", int, 16, "Scaling numerator: the update is scaled by alpha / r.", minimum=1, maximum=4096,
               source="PEFT examples (alpha = 2r)"),
        Option("dropout", float, 0.05, "Dropout on the LoRA input.", minimum=0.0, maximum=0.9,
               source="PEFT examples (0.05); Hu et al. 2021 used 0.1 for GPT-2"),
        Option("target_modules", list, None, "Module names to adapt; empty means PEFT's default for the "
               "architecture (q_proj,v_proj on Llama; query,value on BERT).", nullable=True,
               source="Hu et al. 2021: adapting W_q and W_v together works best for a fixed budget"),
        learning_rate(3e-3, "results/sweep-lr-cpu: best of 3.3e-4/1e-3/3e-3 for a 12-step budget; Hu et al. 2021 "
                            "used 2e-4 over 5 epochs (GPT-2); "
                            "trains without diverging at 48 and 240 steps (results/lr-5x-cpu)"),
    )

    def peft_config(self, loaded, task, config):
        from peft import LoraConfig  # imported here: listing methods must not load torch

        return LoraConfig(
            task_type=peft_task_type(loaded),
            r=config["r"],
            lora_alpha=config["alpha"],
            lora_dropout=config["dropout"],
            target_modules=config["target_modules"] or None,
        )


@hookimpl
def register_methods(register):
    register(LoRA())
