"""VeRA: one pair of frozen random matrices shared by every layer; each layer trains two scaling vectors."""

from tuning_bench import Option, hookimpl
from tuning_bench.api.method import ADAPTER, learning_rate, peft_task_type
from tuning_bench.api.peft_method import PeftMethod


class VeRA(PeftMethod):
    """ΔW = Λ_b · B · Λ_d · A with A and B random, frozen and shared across layers, regenerated from
    ``projection_prng_key``; only the vectors b (zeros at init) and d train and are saved."""

    name = "vera"
    family = ADAPTER
    in_default_run = False  # a variant: `--methods vera` (the default run keeps its set and time budget)
    description = "VeRA: shared frozen random low-rank matrices; each layer learns only two scaling vectors."
    paper = "Kopiczko et al. 2024, VeRA: Vector-based Random Matrix Adaptation"
    decoding = "engine"  # the model's own forward (layers wrapped in place): it takes the KV cache
    options = (
        Option("r", int, 256, "Rank of the shared random matrices (costs no trained parameters per rank but d).",
               minimum=1, maximum=4096,
               source="PEFT VeraConfig default and PEFT method_comparison MetaMathQA vera (r 256); Kopiczko et al. "
                      "2024 use 256-1024"),
        Option("d_initial", float, 0.1, "Initial value of the d vectors.", minimum=0.0, maximum=10.0,
               source="Kopiczko et al. 2024, sec. 4 (d_init 0.1); PEFT VeraConfig default"),
        Option("dropout", float, 0.0, "Dropout on the adapter input.", minimum=0.0, maximum=0.9,
               source="PEFT method_comparison MetaMathQA vera (0.0)"),
        Option("projection_seed", int, 0, "Seed of the shared random matrices (PEFT's projection_prng_key).",
               minimum=0, maximum=2**31 - 1, source="PEFT VeraConfig default"),
        Option("target_modules", list, None, "Module names to adapt; empty means PEFT's default for the "
               "architecture (q_proj,v_proj on Llama; query,value on BERT).", nullable=True,
               source="PEFT's VeRA defaults (as LoRA's); Kopiczko et al. 2024 adapt the query and value projections"),
        learning_rate(3e-2, "10x tbench lora's swept rate (results/sweep-lr-cpu), not swept for VeRA: PEFT "
                            "method_comparison MetaMathQA trains VeRA at 10x LoRA's rate (1e-3 vs 1e-4), as do "
                            "Kopiczko et al. 2024 for instruction tuning (4e-3 vs 4e-4)"),
    )

    def peft_config(self, loaded, task, config):
        from peft import VeraConfig  # imported here: listing methods must not load torch

        # save_projection=False: the shared matrices are regenerated from the seed on load, so the
        # saved state is exactly what trains (the point of the method: a few vectors per layer).
        return VeraConfig(task_type=peft_task_type(loaded), r=config["r"], d_initial=config["d_initial"],
                          vera_dropout=config["dropout"], projection_prng_key=config["projection_seed"],
                          target_modules=config["target_modules"] or None, save_projection=False)


@hookimpl
def register_methods(register):
    register(VeRA())
