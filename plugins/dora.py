"""DoRA: LoRA on the direction of each adapted weight, plus a trainable magnitude per output feature."""

from tuning_bench import Option, hookimpl
from tuning_bench.api.method import ADAPTER, learning_rate, peft_task_type
from tuning_bench.api.peft_method import PeftMethod


class DoRA(PeftMethod):
    name = "dora"
    family = ADAPTER
    in_default_run = False  # a variant: `--methods dora` (the default run keeps its set and time budget)
    description = "DoRA: split each adapted weight into magnitude and direction; LoRA on the direction, magnitude trained."
    paper = "Liu et al. 2024, DoRA: Weight-Decomposed Low-Rank Adaptation"
    decoding = "engine"  # the model's own forward (layers wrapped in place): it takes the KV cache
    options = (
        Option("r", int, 8, "Rank of the directional update.", minimum=1, maximum=1024,
               source="tbench lora's rank, so DoRA and LoRA differ only in the decomposition "
                      "(Liu et al. 2024, sec. 5.1 compare them at equal rank)"),
        Option("alpha", int, 16, "Scaling numerator: the update is scaled by alpha / r.", minimum=1, maximum=4096,
               source="alpha = 2r, as tbench lora and PEFT method_comparison MetaMathQA lora-rank32-dora (r 32, alpha 64)"),
        Option("dropout", float, 0.05, "Dropout on the adapter input.", minimum=0.0, maximum=0.9,
               source="Liu et al. 2024, commonsense-reasoning hyper-parameters (0.05)"),
        Option("target_modules", list, None, "Module names to adapt; empty means PEFT's default for the "
               "architecture (q_proj,v_proj on Llama; query,value on BERT).", nullable=True,
               source="PEFT's LoRA defaults, as tbench lora"),
        learning_rate(3e-3, "tbench lora's swept rate (results/sweep-lr-cpu), not swept for DoRA: PEFT "
                            "method_comparison MetaMathQA trains DoRA at LoRA's rate (lora-rank32-dora, 1e-4)"),
    )

    def peft_config(self, loaded, task, config):
        from peft import LoraConfig  # imported here: listing methods must not load torch

        return LoraConfig(task_type=peft_task_type(loaded), r=config["r"], lora_alpha=config["alpha"],
                          lora_dropout=config["dropout"], target_modules=config["target_modules"] or None,
                          use_dora=True)


@hookimpl
def register_methods(register):
    register(DoRA())
