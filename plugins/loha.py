"""LoHa: a low-rank update built as the Hadamard product of two LoRA-style products."""

from tuning_bench import Option, hookimpl
from tuning_bench.api.method import ADAPTER, learning_rate, peft_task_type
from tuning_bench.api.peft_method import PeftMethod


class LoHa(PeftMethod):
    """ΔW = (B1·A1) ⊙ (B2·A2): twice LoRA's parameters at rank r, for an update of rank up to r²."""

    name = "loha"
    family = ADAPTER
    in_default_run = False  # a variant: `--methods loha` (the default run keeps its set and time budget)
    description = "LoHa: Hadamard product of two rank-r factorisations (rank up to r^2 for 2x LoRA's parameters)."
    paper = "Hyeon-Woo et al. 2022, FedPara (the Hadamard factorisation); Yeh et al. 2024, LyCORIS (LoHa for fine-tuning)"
    decoding = "engine"  # the model's own forward (layers wrapped in place): it takes the KV cache
    options = (
        Option("r", int, 8, "Rank of each of the two factorisations.", minimum=1, maximum=1024,
               source="tbench lora's rank (PEFT LoHaConfig default 8)"),
        Option("alpha", int, 16, "Scaling numerator: the update is scaled by alpha / r.", minimum=1, maximum=4096,
               source="alpha = 2r, as PEFT method_comparison MetaMathQA loha-rank32 (r 32, alpha 64)"),
        Option("rank_dropout", float, 0.0, "Dropout over the rank dimension during training.", minimum=0.0,
               maximum=0.9, source="PEFT method_comparison MetaMathQA loha (0.0)"),
        Option("module_dropout", float, 0.0, "Probability of skipping a whole adapted module in a training step.",
               minimum=0.0, maximum=0.9, source="PEFT method_comparison MetaMathQA loha (0.0)"),
        Option("target_modules", list, None, "Module names to adapt; empty means PEFT's default for the "
               "architecture (q_proj,v_proj on Llama; query,value on BERT).", nullable=True,
               source="PEFT method_comparison MetaMathQA loha (q_proj, v_proj); PEFT's defaults"),
        learning_rate(3e-3, "tbench lora's swept rate (results/sweep-lr-cpu), not swept for LoHa: PEFT "
                            "method_comparison MetaMathQA trains LoHa at LoRA's rate (loha-rank32, 1e-4)"),
    )

    def peft_config(self, loaded, task, config):
        from peft import LoHaConfig  # imported here: listing methods must not load torch

        return LoHaConfig(task_type=peft_task_type(loaded), r=config["r"], alpha=config["alpha"],
                          rank_dropout=config["rank_dropout"], module_dropout=config["module_dropout"],
                          target_modules=config["target_modules"] or None)


@hookimpl
def register_methods(register):
    register(LoHa())
