"""rsLoRA: LoRA scaled by alpha / sqrt(r) instead of alpha / r, so that higher ranks keep learning."""

from tuning_bench import Option, hookimpl
from tuning_bench.api.method import ADAPTER, learning_rate, peft_task_type
from tuning_bench.api.peft_method import PeftMethod


class RsLoRA(PeftMethod):
    name = "rslora"
    family = ADAPTER
    in_default_run = False  # a variant: `--methods rslora` (the default run keeps its set and time budget)
    description = "rsLoRA: LoRA with the rank-stabilised scale alpha/sqrt(r), for ranks where alpha/r starves the update."
    paper = "Kalajdzievski 2023, A Rank Stabilization Scaling Factor for Fine-Tuning with LoRA"
    decoding = "engine"  # the model's own forward (layers wrapped in place): it takes the KV cache
    options = (
        Option("r", int, 64, "Rank of the update.", minimum=1, maximum=1024,
               source="PEFT method_comparison MetaMathQA lora-rank64-rslora (r 64): the scale pays at higher ranks "
                      "(Kalajdzievski 2023, fig. 1)"),
        Option("alpha", int, 16, "Scaling numerator: the update is scaled by alpha / sqrt(r).", minimum=1,
               maximum=4096, source="16/sqrt(64) = 2, the scale of tbench lora (16/8), so only the rank differs"),
        Option("dropout", float, 0.05, "Dropout on the LoRA input.", minimum=0.0, maximum=0.9,
               source="PEFT examples (0.05), as tbench lora"),
        Option("target_modules", list, None, "Module names to adapt; empty means PEFT's default for the "
               "architecture (q_proj,v_proj on Llama; query,value on BERT).", nullable=True,
               source="PEFT's LoRA defaults, as tbench lora"),
        learning_rate(3e-3, "tbench lora's swept rate (results/sweep-lr-cpu), not swept for rsLoRA: PEFT "
                            "method_comparison MetaMathQA trains rsLoRA at LoRA's rate (lora-rank64-rslora, 1e-4)"),
    )

    def peft_config(self, loaded, task, config):
        from peft import LoraConfig  # imported here: listing methods must not load torch

        return LoraConfig(task_type=peft_task_type(loaded), r=config["r"], lora_alpha=config["alpha"],
                          lora_dropout=config["dropout"], target_modules=config["target_modules"] or None,
                          use_rslora=True)


@hookimpl
def register_methods(register):
    register(RsLoRA())
