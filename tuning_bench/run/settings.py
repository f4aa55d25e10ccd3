"""Run settings: built-in defaults, --quick, a suite config file (YAML), then command-line flags."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from tuning_bench.api.bounded import MAX_VALUES, brief_repr, too_large
from tuning_bench.api.errors import UsageError, did_you_mean


@dataclass
class RunSettings:
    """Everything `tbench run` needs. Empty ``methods`` means every registered method."""

    methods: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=lambda: ["product-descriptions"])
    task_files: list[str] = field(default_factory=list)
    model: str = "smollm2-135m"
    seeds: list[int] = field(default_factory=lambda: [0])
    # Sized so that the default run (8 methods, one seed) ends within 10 minutes on a 2-core CPU; see
    # bench/RESULTS.md for the measured breakdown.
    steps: int = 12
    epochs: int = 0  # > 0: train this many passes over each task's train split instead of `steps`
    batch_size: int = 4
    eval_examples: int = 20
    val_examples: int = 8
    val_every: int = 0  # 0: twice per run (half-way and at the end), or ten times with early stopping
    patience: int = 0  # early stopping after this many validations without improvement; 0: off
    min_delta: float = 0.0  # the least drop in validation loss that counts as an improvement
    eval_batch_size: int = 20
    device: str = "auto"
    precision: str = "auto"
    threads: int = 0
    max_length: int = 512
    prompt_format: str = "auto"
    keep: str = "adapters"
    sweep: str | None = None
    out: str = "tbench-runs/latest"
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    trust_remote_code: bool = False
    executor: str = "local"
    samples: int = 5
    latency: bool = True  # time one example answered alone (batch size 1)
    max_new_tokens: int = 0  # 0: the task's own limit
    quick: bool = False  # a smoke run (set by --quick): its verdict says it supports no conclusion


# --quick: a smoke run of every method that finishes in a few minutes on a 2-core CPU.
# Its answers are cut at 24 tokens: decoding dominates a smoke run on a CPU, and its quality numbers are
# not meant for comparison.
QUICK = {"steps": 2, "eval_examples": 4, "val_examples": 4, "val_every": 2, "samples": 2, "latency": False,
         "max_new_tokens": 24, "quick": True}

SWEEPS = {"lr": ("learning_rate", (1 / 3, 1.0, 3.0))}  # factors around each method's default

_CHOICES = {
    "device": None,  # checked when the run is planned (cpu, cuda, cuda:N, auto)
    "precision": ("auto", "fp32", "bf16"),
    "prompt_format": ("auto", "chat", "plain"),
    "keep": ("adapters", "all", "none"),
    "executor": ("local", "in-process"),
    "sweep": (None, *SWEEPS),
}
_MINIMUM = {"steps": 1, "batch_size": 1, "eval_examples": 0, "val_examples": 0, "val_every": 0, "eval_batch_size": 1,
            "threads": 0, "max_length": 8, "samples": 0}


def _type_name(value: Any) -> str:
    return {list: "a list", dict: "a mapping", int: "an integer", str: "a string", bool: "true/false"}.get(type(value), type(value).__name__)


def check_value(name: str, value: Any, where: str) -> Any:
    """Validate one setting's type and range; ``where`` names the source for the error."""
    default = getattr(RunSettings(), name)
    if name == "seeds":
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value):
            raise UsageError(f"{where}: seeds must be a non-empty list of non-negative integers, e.g. 0,1,2 (got {brief_repr(value)})")
        return list(dict.fromkeys(value))
    if name in ("methods", "tasks", "task_files"):
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UsageError(f"{where}: {name} must be a list of names (got {brief_repr(value)})")
        return value
    if name == "options":
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise UsageError(f"{where}: options must map method names to option mappings, e.g. options: {{prompt: {{num_virtual_tokens: 50}}}}")
        return value
    if name == "sweep":
        if value not in _CHOICES["sweep"]:
            raise UsageError(f"{where}: sweep must be one of {', '.join(SWEEPS)} (got {brief_repr(value)})")
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise UsageError(f"{where}: {name} must be true or false (got {brief_repr(value)})")
        return value
    if isinstance(default, int):
        if not isinstance(value, int) or isinstance(value, bool):
            raise UsageError(f"{where}: {name} must be an integer (got {brief_repr(value)})")
        if value < _MINIMUM.get(name, 0):
            raise UsageError(f"{where}: {name} must be at least {_MINIMUM.get(name, 0)} (got {value})")
        return value
    if isinstance(default, float):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
            raise UsageError(f"{where}: {name} must be a number of at least 0 (got {value!r})")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise UsageError(f"{where}: {name} must be a string (got {_type_name(value)})")
        choices = _CHOICES.get(name)
        if choices and value not in choices:
            raise UsageError(f"{where}: {name} must be one of {', '.join(c for c in choices if c)} (got {brief_repr(value)})")
        return value
    return value


def load_suite(path: Path) -> dict[str, Any]:
    """Read a suite config file: the same keys as RunSettings (see the README)."""
    where = str(path)
    if not path.is_file():
        raise UsageError(f"{where}: no such suite config file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise UsageError(f"{where}: invalid YAML{at}; fix the syntax (indentation, colons, quotes)") from None
    if data is None:
        return {}
    if too_large(data):
        raise UsageError(f"{where}: expands to more than {MAX_VALUES:,} values (YAML aliases nested too deep); "
                         "write the values out instead of through nested aliases")
    if not isinstance(data, dict):
        raise UsageError(f"{where}: expected a mapping of settings at the top level (e.g. methods: [prompt, lora])")
    known = [f.name for f in fields(RunSettings)]
    checked = {}
    for key, value in data.items():
        if key not in known:
            raise UsageError(f"{where}: key '{key}': {did_you_mean('setting', str(key), known)}")
        checked[key] = check_value(key, value, f"{where}: key '{key}'")
    return checked


def build_settings(quick: bool, suite: dict[str, Any], flags: dict[str, Any]) -> RunSettings:
    """Defaults, then --quick, then the suite file, then command-line flags (later wins).

    `steps` and `epochs` both set the training length: a later layer's one replaces an earlier layer's
    other, and one layer that sets both is refused."""
    settings = RunSettings()
    layers = [QUICK if quick else {}, suite, flags]
    for layer, where in zip(layers, ("--quick", "the suite config file", "the command line")):
        if layer.get("steps") is not None and layer.get("epochs"):
            raise UsageError(f"{where} sets both steps and epochs; give one (epochs: that many passes over the train split)")
        if layer.get("steps") is not None:
            settings.epochs = 0
        for key, value in layer.items():
            if value is None:
                continue
            if key == "options":
                for method, opts in value.items():
                    settings.options.setdefault(method, {}).update(opts)
                continue
            setattr(settings, key, value)
    if settings.patience and not settings.val_examples:
        raise UsageError("early stopping (patience) needs validation examples; set val_examples to at least 1")
    return settings
