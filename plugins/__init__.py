"""Built-in plugins: methods, model sources and the shipped metrics, each through the same hook a third party uses."""

# Loaded in this order by tuning_bench.host.plugins; the order is the default run order.
PLUGINS = ["zero_shot", "few_shot", "prompt_tuning", "prefix_tuning", "ptuning", "lora", "ia3", "finetune",
           # Registered, but not in the default run (Method.in_default_run): the trained hard prompt, the
           # variants and selective methods, and any PEFT configuration.
           "hard_prompt", "dora", "rslora", "pissa", "adalora", "lora_plus", "vera", "loha", "lokr", "oft", "ln_tuning",
           "bitfit", "peft_config",
           "model_sources", "metrics"]
