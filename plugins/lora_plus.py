"""LoRA+: LoRA with a higher learning rate for B than for A."""

from tuning_bench import Option, hookimpl
from tuning_bench.api.method import ADAPTER, learning_rate, peft_task_type
from tuning_bench.api.peft_method import PeftMethod


class LoRAPlus(PeftMethod):
    """LoRA's adapter, trained with two optimiser groups: A (and anything else that trains, such as an
    encoder's head) at ``learning_rate``, B at ``learning_rate * lr_ratio``. The saved adapter is
    plain LoRA: only training differs."""

    name = "lora-plus"
    family = ADAPTER
    in_default_run = False  # a variant: `--methods lora-plus` (the default run keeps its set and time budget)
    description = "LoRA+: LoRA whose B matrices learn lr_ratio times faster than its A matrices."
    paper = "Hayou et al. 2024, LoRA+: Efficient Low Rank Adaptation of Large Models"
    decoding = "engine"  # the model's own forward (layers wrapped in place): it takes the KV cache
    options = (
        Option("r", int, 8, "Rank of the update.", minimum=1, maximum=1024, source="tbench lora's rank"),
        Option("alpha", int, 16, "Scaling numerator: the update is scaled by alpha / r.", minimum=1, maximum=4096,
               source="tbench lora's alpha (PEFT examples, alpha = 2r)"),
        Option("dropout", float, 0.05, "Dropout on the LoRA input.", minimum=0.0, maximum=0.9,
               source="tbench lora's dropout (PEFT examples)"),
        Option("target_modules", list, None, "Module names to adapt; empty means PEFT's default for the "
               "architecture (q_proj,v_proj on Llama; query,value on BERT).", nullable=True,
               source="PEFT's LoRA defaults, as tbench lora"),
        Option("lr_ratio", float, 16.0, "B's learning rate over A's.", minimum=1.0, maximum=1024.0,
               source="Hayou et al. 2024, sec. 5: ratio 2^4 as the rule of thumb; PEFT's create_loraplus_optimizer "
                      "example (loraplus_lr_ratio=16)"),
        learning_rate(3e-3, "A's rate: tbench lora's swept rate (results/sweep-lr-cpu), not swept for LoRA+; "
                            "Hayou et al. 2024 keep LoRA's rate for A and raise B's"),
    )

    def peft_config(self, loaded, task, config):
        from peft import LoraConfig  # imported here: listing methods must not load torch

        return LoraConfig(task_type=peft_task_type(loaded), r=config["r"], lora_alpha=config["alpha"],
                          lora_dropout=config["dropout"], target_modules=config["target_modules"] or None)

    def parameter_groups(self, model, config):
        trained = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        rate = config["learning_rate"]
        return [{"params": [p for name, p in trained if "lora_B" not in name], "lr": rate},
                {"params": [p for name, p in trained if "lora_B" in name], "lr": rate * config["lr_ratio"]}]


@hookimpl
def register_methods(register):
    register(LoRAPlus())
