"""OFT: rotate each adapted weight's input space by a learned block-diagonal orthogonal matrix."""

from tuning_bench import Option, hookimpl
from tuning_bench.api.method import ADAPTER, learning_rate, peft_task_type
from tuning_bench.api.peft_method import PeftMethod


class OFT(PeftMethod):
    """W' = W · R with R block-diagonal and orthogonal (each block the Cayley transform of a trained
    skew-symmetric matrix, the identity at init), so angles between neurons are kept."""

    name = "oft"
    family = ADAPTER
    in_default_run = False  # a variant: `--methods oft` (the default run keeps its set and time budget)
    description = "OFT: multiply each adapted weight by a learned block-diagonal orthogonal matrix."
    paper = "Qiu et al. 2023, Controlling Text-to-Image Diffusion by Orthogonal Finetuning"
    decoding = "engine"  # the model's own forward (layers wrapped in place): it takes the KV cache
    options = (
        Option("block_size", int, 32, "Size of each orthogonal block; must divide the adapted layers' input width.",
               minimum=2, maximum=4096, source="PEFT OFTConfig default (oft_block_size 32; 576 = 18 x 32 on SmolLM2)"),
        Option("cayley_neumann", bool, False, "Approximate the Cayley transform's inverse by a Neumann series "
               "(faster, approximately orthogonal).",
               source="Qiu et al. 2023 use the exact Cayley transform, as did PEFT method_comparison MetaMathQA oft"),
        Option("module_dropout", float, 0.0, "Probability of replacing a block by the identity in a training step.",
               minimum=0.0, maximum=0.9, source="PEFT method_comparison MetaMathQA oft (0.0)"),
        Option("target_modules", list, None, "Module names to adapt; empty means PEFT's default for the "
               "architecture (q_proj,v_proj on Llama; query,value on BERT).", nullable=True,
               source="PEFT method_comparison MetaMathQA oft (q_proj, v_proj); PEFT's defaults"),
        learning_rate(3e-3, "tbench lora's swept rate (results/sweep-lr-cpu), not swept for OFT: PEFT "
                            "method_comparison MetaMathQA trains OFT at LoRA's rate (oft-rank32, 1e-4)"),
    )

    def peft_config(self, loaded, task, config):
        from peft import OFTConfig  # imported here: listing methods must not load torch

        return OFTConfig(task_type=peft_task_type(loaded), r=0, oft_block_size=config["block_size"],
                         use_cayley_neumann=config["cayley_neumann"], module_dropout=config["module_dropout"],
                         target_modules=config["target_modules"] or None)


@hookimpl
def register_methods(register):
    register(OFT())
