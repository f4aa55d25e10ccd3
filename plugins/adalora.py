"""AdaLoRA: SVD-shaped LoRA whose rank budget moves, while training, to the weights that matter most."""

from tuning_bench import Option, hookimpl
from tuning_bench.api.method import ADAPTER, learning_rate, peft_task_type
from tuning_bench.api.peft_method import PeftMethod

# The schedule is declared before the run's step count is known; on_step rescales it at step 1.
_PLACEHOLDER_STEPS = 1_000_000  # large, so the fractions survive the round trip through whole steps


class AdaLoRA(PeftMethod):
    """Each adapted weight gets P·Λ·Q with ``init_r`` singular values; after every optimiser step
    ``update_and_allocate`` scores them (sensitivity, smoothed with beta1 = beta2 = 0.85, PEFT's and the
    paper's defaults) and masks the least important until the average rank is ``target_r``. The budget
    falls on a cubic schedule from step ``tinit`` to ``total - tfinal``; ``total`` is the run's step
    budget (set at the first step), and tinit, tfinal are fractions of it.

    The paper's orthogonality penalty on P and Q is not applied: PEFT adds it only to a loss the model
    computes from labels, and the engine computes every method's loss itself, the same way."""

    name = "adalora"
    family = ADAPTER
    in_default_run = False  # a variant: `--methods adalora` (the default run keeps its set and time budget)
    description = "AdaLoRA: SVD-form LoRA that prunes its least important singular values to a rank budget while training."
    paper = "Zhang et al. 2023, AdaLoRA: Adaptive Budget Allocation for Parameter-Efficient Fine-Tuning"
    decoding = "engine"  # the model's own forward (layers wrapped in place): it takes the KV cache
    options = (
        Option("init_r", int, 12, "Rank each adapted weight starts with.", minimum=1, maximum=1024,
               source="PEFT AdaLoraConfig default; Zhang et al. 2023 start at 1.5x the final budget"),
        Option("target_r", int, 8, "Average rank left after pruning.", minimum=1, maximum=1024,
               source="PEFT AdaLoraConfig default; tbench lora's rank, so the final budget matches LoRA's"),
        Option("alpha", int, 8, "Scaling numerator (AdaLoRA divides by the current rank).", minimum=1, maximum=4096,
               source="PEFT AdaLoraConfig default; PEFT method_comparison MetaMathQA adalora (lora_alpha 8)"),
        Option("dropout", float, 0.0, "Dropout on the adapter input.", minimum=0.0, maximum=0.9,
               source="PEFT method_comparison MetaMathQA adalora (0.0)"),
        Option("tinit_fraction", float, 0.04, "Share of the steps trained at full rank before pruning starts.",
               minimum=0.0, maximum=0.9, source="PEFT method_comparison MetaMathQA adalora: tinit 200 of 5000 steps"),
        Option("tfinal_fraction", float, 0.1, "Share of the steps trained at the final ranks after pruning ends.",
               minimum=0.0, maximum=0.9, source="PEFT method_comparison MetaMathQA adalora: tfinal 500 of 5000 steps"),
        Option("target_modules", list, None, "Module names to adapt; empty means PEFT's default for the "
               "architecture (q_proj,v_proj on Llama; query,value on BERT).", nullable=True,
               source="PEFT's LoRA defaults, as tbench lora"),
        learning_rate(3e-3, "tbench lora's swept rate (results/sweep-lr-cpu), not swept for AdaLoRA: PEFT "
                            "method_comparison MetaMathQA trains AdaLoRA at LoRA's rate (adalora-rank32, 1e-4)"),
    )

    def peft_config(self, loaded, task, config):
        from peft import AdaLoraConfig  # imported here: listing methods must not load torch

        tinit, tfinal = _phases(_PLACEHOLDER_STEPS, config["tinit_fraction"], config["tfinal_fraction"])
        return AdaLoraConfig(task_type=peft_task_type(loaded), init_r=config["init_r"], target_r=config["target_r"],
                             lora_alpha=config["alpha"], lora_dropout=config["dropout"],
                             target_modules=config["target_modules"] or None,
                             tinit=tinit, tfinal=tfinal, total_step=_PLACEHOLDER_STEPS, deltaT=1)

    def on_step(self, model, step, total):
        adapter = model.peft_config[model.active_adapter]
        if step == 1:  # the run's step budget, now known: the budget schedule spans it
            fractions = adapter.tinit / _PLACEHOLDER_STEPS, adapter.tfinal / _PLACEHOLDER_STEPS
            adapter.total_step = total
            adapter.tinit, adapter.tfinal = _phases(total, *fractions)
        model.base_model.update_and_allocate(step)  # reads the gradients: the engine calls this before zero_grad


def _phases(total: int, tinit_fraction: float, tfinal_fraction: float) -> tuple[int, int]:
    """tinit and tfinal in steps, leaving at least one step of pruning (PEFT refuses a schedule without)."""
    tinit, tfinal = int(total * tinit_fraction), int(total * tfinal_fraction)
    while tinit + tfinal >= total and (tinit or tfinal):
        if tinit >= tfinal:
            tinit -= 1
        else:
            tfinal -= 1
    return tinit, tfinal


@hookimpl
def register_methods(register):
    register(AdaLoRA())
