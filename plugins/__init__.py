"""Built-in method plugins. Each module registers its method through the same hook a third party uses."""

# Loaded in this order by tuning_bench.host.plugins; the order is the default run order.
PLUGINS = ["zero_shot", "few_shot", "prompt_tuning", "prefix_tuning", "ptuning", "lora", "ia3", "finetune", "model_sources"]
