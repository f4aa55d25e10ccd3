"""Built-in plugins: methods, model sources and the shipped metrics, each through the same hook a third party uses."""

# Loaded in this order by tuning_bench.host.plugins; the order is the default run order.
PLUGINS = ["zero_shot", "few_shot", "prompt_tuning", "prefix_tuning", "ptuning", "lora", "ia3", "finetune",
           # Variants and selective methods: registered, but not in the default run (Method.in_default_run).
           "dora", "rslora", "pissa", "adalora", "lora_plus", "vera", "loha", "lokr", "oft", "ln_tuning", "bitfit",
           "model_sources", "metrics"]
