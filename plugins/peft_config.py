"""peft: any PEFT configuration, from a PEFT ``adapter_config.json`` or inline fields, under the same engine."""

from __future__ import annotations

from typing import Any

from tuning_bench import Option, hookimpl
from tuning_bench.api.errors import UsageError
from tuning_bench.api.method import learning_rate, peft_task_type
from tuning_bench.api.options import resolve_options
from tuning_bench.api.peft_method import PeftMethod

# Soft prompts are prepended to the input: the engine's exact loop. Prefix tuning and LLaMA-Adapter keep
# their own cache handling: the model's generate. Every other tuner wraps layers: the engine's cached loop.
_DECODING = {"PROMPT_TUNING": "soft-prompt", "P_TUNING": "soft-prompt", "MULTITASK_PROMPT_TUNING": "soft-prompt",
             "CPT": "soft-prompt", "PREFIX_TUNING": "generate", "ADAPTION_PROMPT": "generate"}


class AnyPeft(PeftMethod):
    name = "peft"
    description = "Any PEFT configuration: a PEFT adapter_config.json (--set peft.config=FILE) or inline fields."
    paper = "Mangrulkar et al. 2022, PEFT (github.com/huggingface/peft); method_comparison's experiment format"
    in_default_run = False  # nothing to run until it is given a configuration
    config_file_option = "config"
    options = (
        Option("config", str, None, "A PEFT adapter_config.json (or a folder holding one), read once when the "
               "run is planned; its fields land in `fields`.", nullable=True,
               source="PEFT's own format; base_model_name_or_path, revision, task_type and inference_mode are "
                      "set by tbench"),
        Option("peft_type", str, None, "PEFT tuner type (LORA, VERA, LOHA, IA3, ...); a config file names its own.",
               nullable=True, source="PEFT's PeftType"),
        Option("fields", dict, {}, "Fields of PEFT's config class for peft_type; give each as "
               "--set peft.FIELD=VALUE (lists: a,b or JSON). Unset fields keep PEFT's defaults.",
               source="PEFT's config class defaults"),
        learning_rate(3e-3, "the lora default here (results/sweep-lr-cpu: best of 3.3e-4/1e-3/3e-3 for LoRA; holds "
                            "at 48 and 240 steps, results/lr-5x-cpu); other tuners may want --sweep lr"),
    )

    def resolve_config(self, overrides, where="--set"):
        """Declared options as usual; every other key is a field of PEFT's config class, checked against it.

        A config file's fields come first, ``fields`` and single fields override them. The file is read
        here and not kept: the resolved config holds its content (so the cache key does), and resolving
        that again gives the same config."""
        from tuning_bench.api.peft_fields import build_config, check_fields, config_class, read_config_file

        declared = {o.name for o in self.options}
        config = resolve_options(self.name, self.options, {k: v for k, v in overrides.items() if k in declared}, where)
        fields: dict[str, Any] = {}
        if config["config"]:
            fields = read_config_file(config["config"], where)
            config["peft_type"] = config["peft_type"] or fields["peft_type"]
        if not config["peft_type"]:
            raise UsageError(f"{where}: {self.name} needs a configuration: --set {self.name}.config=adapter_config.json "
                             f"or --set {self.name}.peft_type=TYPE (e.g. VERA) with any of its fields")
        config_cls = config_class(config["peft_type"], where)
        inline = {k: v for k, v in overrides.items() if k not in declared}  # --set peft.FIELD=TEXT
        fields.update(config["fields"])
        fields.update(inline)
        checked = check_fields(config_cls, fields, self.name, where, text=inline.keys())
        peft_type = str(config["peft_type"]).strip().upper()  # as config_class found it
        try:
            build_config(peft_type, checked, None)  # PEFT's own checks of the combination, before anything runs
        except (ValueError, TypeError, ImportError) as exc:  # ImportError: a tuner that needs another package
            raise UsageError(f"{where}: PEFT refuses this {peft_type} config: {_first_line(exc)}") from None
        return {**config, "config": None, "peft_type": peft_type, "fields": checked}

    def decoding_for(self, config):
        return _DECODING.get(str(config.get("peft_type") or "").upper(), "engine")

    def peft_config(self, loaded, task, config):
        from tuning_bench.api.peft_fields import build_config

        return build_config(config["peft_type"], config["fields"], peft_task_type(loaded))

    def not_applicable_to(self, loaded, task, config):
        """PEFT's own reason when it cannot apply the tuner to this model (no matching or supported layers).

        Only applying it tells, so this adapts the model here and keeps the result for ``adapt``."""
        self._prepared = None
        try:
            self._prepared = (id(loaded.model), super().adapt(loaded, task, config))
        except (ValueError, TypeError, NotImplementedError, KeyError) as exc:
            return f"PEFT cannot apply {config['peft_type']} to this model: {_first_line(exc)}"
        return None

    def adapt(self, loaded, task, config):
        prepared, self._prepared = getattr(self, "_prepared", None), None
        if prepared is not None and prepared[0] == id(loaded.model):
            return prepared[1]
        return super().adapt(loaded, task, config)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


@hookimpl
def register_methods(register):
    register(AnyPeft())
