"""Built-in plugins: methods, model sources and the shipped metrics, each through the same hook a third party uses."""

# Loaded in this order by tuning_bench.host.plugins; the order is the default run order.
PLUGINS = ["zero_shot", "few_shot", "hard_prompt", "prompt_tuning", "prefix_tuning", "ptuning", "lora", "ia3", "finetune", "peft_config", "model_sources", "metrics"]
