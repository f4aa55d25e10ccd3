"""PiSSA: LoRA initialised from the principal singular vectors of each weight; the frozen weight keeps the residual."""

from tuning_bench import Option, hookimpl
from tuning_bench.api.method import ADAPTER, learning_rate, peft_task_type
from tuning_bench.api.peft_method import PeftMethod


class PiSSA(PeftMethod):
    """LoRA whose A and B start as the top-r singular directions of W, and whose base weight becomes
    W - B·A (the residual). The residual is not saved: loading runs the same exact SVD on the same base
    weights (PEFT's ``init_lora_weights="pissa"``), which gives it back bit for bit before the trained
    A and B are put in place. The one method here that rewrites frozen weights (at adapt time only)."""

    name = "pissa"
    family = ADAPTER
    in_default_run = False  # a variant: `--methods pissa` (the default run keeps its set and time budget)
    description = "PiSSA: LoRA started from the top-r singular vectors of each weight; the frozen weight keeps the rest."
    paper = "Meng et al. 2024, PiSSA: Principal Singular Values and Singular Vectors Adaptation of Large Language Models"
    decoding = "engine"  # the model's own forward (layers wrapped in place): it takes the KV cache
    options = (
        Option("r", int, 8, "Rank: how many principal singular directions train.", minimum=1, maximum=1024,
               source="tbench lora's rank, for a like-for-like budget (Meng et al. 2024 compare at equal rank)"),
        Option("alpha", int, 8, "Scaling numerator (alpha / r); PiSSA's A and B absorb the scale at init.",
               minimum=1, maximum=4096, source="Meng et al. 2024 and PEFT's pissa_finetuning example: alpha = r"),
        Option("dropout", float, 0.0, "Dropout on the adapter input.", minimum=0.0, maximum=0.9,
               source="Meng et al. 2024 and PEFT's pissa_finetuning example: no dropout"),
        Option("target_modules", list, None, "Module names to adapt; empty means PEFT's default for the "
               "architecture (q_proj,v_proj on Llama; query,value on BERT).", nullable=True,
               source="PEFT's LoRA defaults, as tbench lora"),
        learning_rate(3e-3, "tbench lora's swept rate (results/sweep-lr-cpu), not swept for PiSSA: Meng et al. "
                            "2024 train PiSSA and LoRA at one learning rate"),
    )

    def peft_config(self, loaded, task, config):
        from peft import LoraConfig  # imported here: listing methods must not load torch

        # "pissa" is the exact SVD: deterministic, so loading recomputes the very residual that trained
        # ("pissa_niter_N" is a randomised, faster SVD).
        return LoraConfig(task_type=peft_task_type(loaded), r=config["r"], lora_alpha=config["alpha"],
                          lora_dropout=config["dropout"], target_modules=config["target_modules"] or None,
                          init_lora_weights="pissa")


@hookimpl
def register_methods(register):
    register(PiSSA())
