"""LoKr: a weight update built as the Kronecker product of a small matrix and a low-rank one."""

from tuning_bench import Option, hookimpl
from tuning_bench.api.method import ADAPTER, learning_rate, peft_task_type
from tuning_bench.api.peft_method import PeftMethod


class LoKr(PeftMethod):
    """ΔW = C ⊗ (B·A): the weight's shape is factored (``decompose_factor``) into a small dense C and a
    larger block, whose low-rank factors train."""

    name = "lokr"
    family = ADAPTER
    in_default_run = False  # a variant: `--methods lokr` (the default run keeps its set and time budget)
    description = "LoKr: Kronecker product of a small dense factor and a rank-r factor."
    paper = "Yeh et al. 2024, Navigating Text-To-Image Customization: From LyCORIS Fine-Tuning to Model Evaluation (LoKr)"
    decoding = "engine"  # the model's own forward (layers wrapped in place): it takes the KV cache
    options = (
        Option("r", int, 8, "Rank of the low-rank factor.", minimum=1, maximum=1024,
               source="tbench lora's rank (PEFT LoKrConfig default 8)"),
        Option("alpha", int, 16, "Scaling numerator: the update is scaled by alpha / r.", minimum=1, maximum=4096,
               source="alpha = 2r, as PEFT method_comparison MetaMathQA lokr-rank32-factor4 (r 32, alpha 64)"),
        Option("decompose_factor", int, 4, "Size of the small Kronecker factor (-1: as balanced as the shape allows).",
               minimum=-1, maximum=4096, source="PEFT method_comparison MetaMathQA lokr-rank32-factor4 (4)"),
        Option("rank_dropout", float, 0.0, "Dropout over the rank dimension during training.", minimum=0.0,
               maximum=0.9, source="PEFT method_comparison MetaMathQA lokr (0.0)"),
        Option("module_dropout", float, 0.0, "Probability of skipping a whole adapted module in a training step.",
               minimum=0.0, maximum=0.9, source="PEFT method_comparison MetaMathQA lokr (0.0)"),
        Option("target_modules", list, None, "Module names to adapt; empty means PEFT's default for the "
               "architecture (q_proj,v_proj on Llama; query,value on BERT).", nullable=True,
               source="PEFT method_comparison MetaMathQA lokr (q_proj, v_proj); PEFT's defaults"),
        learning_rate(3e-3, "PEFT method_comparison MetaMathQA lokr-rank32-factor4-lr0.003 (3e-3, 30x its LoRA rate), "
                            "which equals tbench lora's swept rate; not swept for LoKr"),
    )

    def peft_config(self, loaded, task, config):
        from peft import LoKrConfig  # imported here: listing methods must not load torch

        return LoKrConfig(task_type=peft_task_type(loaded), r=config["r"], alpha=config["alpha"],
                          decompose_factor=config["decompose_factor"], rank_dropout=config["rank_dropout"],
                          module_dropout=config["module_dropout"], target_modules=config["target_modules"] or None)


@hookimpl
def register_methods(register):
    register(LoKr())
