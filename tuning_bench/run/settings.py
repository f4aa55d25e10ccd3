"""Run settings, each defined once: built-in defaults, --quick, a suite config file (YAML), then flags.

Every setting of ``tbench run`` is one ``Setting`` entry in ``SETTINGS``. From that one table come:

- ``RunSettings`` (the dataclass the runner reads) and its defaults;
- the click options of ``tbench run`` (``cli.main`` applies ``click_options()``);
- the checks of suite-file keys and of flag values (``check_value``: type, choices, minimum/maximum,
  finite numbers);
- the defaults of ``engine.cell.CellSpec`` for settings that are per cell (``cell_default``);
- the cache key of a cell (``run.cellcache.cell_key`` leaves out what ``affects_result=False`` marks).

Adding a setting (e.g. ``--epochs``, an early-stopping patience, a precision choice) is one entry here:
``Setting("epochs", "int", 0, "Passes over the training data (0: use --steps).", minimum=0, per_cell=True)``;
if it is per cell, add the field to ``CellSpec`` with ``= cell_default("epochs")`` and read it in the engine;
then add its row to the README's option table (a test checks the table against the command).
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any

import yaml

from tuning_bench.api.bounded import MAX_VALUES, brief_repr, too_large
from tuning_bench.api.errors import UsageError, did_you_mean
from tuning_bench.api.options import range_problem
from tuning_bench.models.quantization import BASE_QUANTS

MAX_SEED = 2**32 - 1  # numpy's seed range; a larger seed would fail inside every cell
_UNSET = object()

SWEEPS = {"lr": ("learning_rate", (1 / 3, 1.0, 3.0))}  # factors around each method's default


@dataclass(frozen=True)
class Setting:
    """One run setting and everything derived from it.

    ``kind`` is int, float, str, bool, names (a comma list of names), paths (repeatable file flag), named_paths
    (repeatable NAME=FILE flag; a mapping in a suite file),
    seeds, or options (per-method option overrides, given with ``--set``). ``affects_result`` False keeps
    the setting out of a cell's cache key (it changes what is printed or kept, not the result).
    ``per_cell`` settings are fields of ``CellSpec``; ``cell_value`` is the default a ``CellSpec`` built
    directly uses where the run resolves the setting first (``device: auto`` becomes ``cpu``).
    ``flag`` is the command-line flag (None: suite file only); ``default_text`` how help shows the default.
    """

    name: str
    kind: str
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    affects_result: bool = True
    per_cell: bool = False
    flag: str | None = ""  # "": --name-with-dashes
    default_text: str = ""
    cell_value: Any = _UNSET

    @property
    def cli_flag(self) -> str | None:
        return ("--" + self.name.replace("_", "-")) if self.flag == "" else self.flag

    @property
    def cell_default(self) -> Any:
        return copy.deepcopy(self.default if self.cell_value is _UNSET else self.cell_value)


SETTINGS: tuple[Setting, ...] = (
    Setting("methods", "names", [], "Comma list of methods.", default_text="the default set (every method with in_default_run)"),
    Setting("tasks", "names", ["product-descriptions"], "Comma list of tasks."),
    Setting("task_files", "paths", [], "A YAML task file (repeatable; replaces the default task unless --tasks is given).",
            flag="--task-file"),
    Setting("method_files", "named_paths", {}, "NAME=FILE: a method NAME that runs the configuration FILE (a PEFT "
            "adapter_config.json); repeatable; each NAME joins the run's methods.", flag="--method-config"),
    Setting("model", "str", "smollm2-135m", "Registered model name, Hugging Face id or local folder.", per_cell=True),
    Setting("seeds", "seeds", [0], "Comma list of distinct seeds, each 0 to 2**32-1."),
    # Sized so that the default run (8 methods, one seed) ends within 10 minutes on a 2-core CPU; see
    # bench/RESULTS.md for the measured breakdown.
    # The default budget answers rather than smokes (bench/RESULTS.md, "The default budget"): on
    # SmolLM2-135M and product-descriptions every method's validation loss has passed its fastest fall
    # by step 24-30 of 60; 80 test examples bound each method's 95 % CI on ROUGE-L within about +-0.03
    # (per-example SD up to 0.13); 16 validation examples four times per run draw the curve for a few
    # seconds per method; and the whole default run fits in 10 minutes on a 2-core CPU with fast bf16.
    Setting("steps", "int", 48, "Optimiser steps per trained method (same for every method).", minimum=1, per_cell=True),
    Setting("epochs", "int", 0, "Passes over each task's train split, instead of --steps (give one of them).",
            minimum=0, default_text="off"),
    Setting("batch_size", "int", 4, "Training batch size (same for every method).", minimum=1, per_cell=True),
    Setting("eval_examples", "int", 80, "Test examples evaluated (0: the whole test split).", minimum=0, per_cell=True),
    Setting("val_examples", "int", 16, "Validation examples.", minimum=0, per_cell=True, flag=None),
    Setting("val_every", "int", 0, "Validate every N steps (0: four times per run; ten times with --patience).", minimum=0,
            per_cell=True, default_text="four times per run; ten times with --patience"),
    Setting("patience", "int", 0, "Stop after P validations without improvement, evaluate the best state (0: off).",
            minimum=0, per_cell=True),
    Setting("min_delta", "float", 0.0, "The least drop in validation loss that counts as an improvement.", minimum=0,
            per_cell=True),
    Setting("eval_batch_size", "int", 128, "Evaluation batch size (most rows per batch; batches are split evenly).", minimum=1, per_cell=True, flag=None),
    Setting("device", "str", "auto", "auto, cpu, cuda or cuda:N.", per_cell=True, cell_value="cpu"),
    Setting("devices", "names", [], "CUDA devices that run cells in parallel, one cell per device at a time (--jobs N: N), e.g. cuda:0,cuda:1.",
            affects_result=False, default_text="off"),
    Setting("jobs", "int", 1, "Cells run at the same time per device (on CUDA: per GPU), each pinned to cores // slots of the host's cores.", minimum=1,
            affects_result=False),
    Setting("precision", "str", "auto", "auto: bf16 autocast on CUDA, and on a CPU where a short probe measures it faster; else fp32.", choices=("auto", "fp32", "bf16"), per_cell=True,
            cell_value="fp32"),
    Setting("threads", "int", 0, "Torch threads on CPU (0: one per available core).", minimum=0, per_cell=True,
            default_text="one per available core"),
    Setting("max_length", "int", 512, "Longest tokenized example; longer ones are truncated.", minimum=8, per_cell=True),
    Setting("prompt_format", "str", "auto", "auto: the chat template when the model has one.",
            choices=("auto", "chat", "plain"), per_cell=True),
    Setting("keep", "str", "adapters", "Trained states kept on disk.", choices=("adapters", "all", "none"),
            per_cell=True, affects_result=False),
    Setting("sweep", "str", None, "Try learning rates around each method's default; pick by validation loss.",
            choices=tuple(SWEEPS), default_text="off"),
    Setting("out", "str", "tbench-runs/latest", "Output directory.", affects_result=False),
    Setting("log_to", "names", [], "Experiment trackers that get one run per cell: tensorboard, mlflow, wandb, trackio.",
            affects_result=False, default_text="off"),
    Setting("options", "options", {}, "Method option overrides: {method: {option: value}}.", flag=None),
    Setting("base_quant", "str", None, "Load the base model quantized by bitsandbytes (QLoRA-style rows): nf4 or "
            "int8; cells are not applicable where bitsandbytes is missing or cannot run it.", choices=BASE_QUANTS,
            per_cell=True, default_text="off (fp32 weights)"),
    Setting("trust_remote_code", "bool", False, "Allow models that need code from their repository.", per_cell=True),
    Setting("executor", "str", "local", "local: each cell in its own process; ray: each cell a Ray task on a cluster "
            "(pip install 'tuning-bench[ray]'; docs/scale-out.md).", choices=("local", "in-process", "ray"),
            affects_result=False),
    Setting("cell_process", "str", "auto", "With --executor local: cell starts a fresh process for every cell (its "
            "host-memory figures are its own); device keeps one process per device for its cells (imports and CUDA "
            "start-up paid once); auto: device on CUDA, cell on the CPU.", choices=("auto", "cell", "device"),
            affects_result=False),
    # The Ray settings have no value unless given (None), so that giving one without --executor ray is refused.
    Setting("cell_gpus", "float", None, "GPUs per cell with --executor ray; a fraction such as 0.5 shares a GPU.",
            minimum=0, affects_result=False, default_text="1 for cells on CUDA, 0 on the CPU"),
    Setting("cell_cpus", "int", None, "CPU cores per cell with --executor ray (each cell is pinned to that many).",
            minimum=1, affects_result=False, default_text="on the CPU: all cores of the smallest node; on CUDA: 1"),
    Setting("ray_address", "str", None, "Ray cluster to run on with --executor ray, e.g. auto or ray://head:10001.",
            affects_result=False, default_text="RAY_ADDRESS, else one started here by ray start, else a new local one"),
    Setting("retries", "int", None, "With --executor ray: times a cell whose process, worker or node died runs again.",
            minimum=0, affects_result=False, default_text="1"),
    Setting("samples", "int", 5, "Example answers kept per cell.", minimum=0, per_cell=True, affects_result=False,
            flag=None),
    Setting("latency", "bool", True, "Time one example answered alone (batch size 1), and the deployment cost "
            "(throughput at batch 8, merged where the method can merge).", per_cell=True, flag=None),
    Setting("max_new_tokens", "int", 0, "Cap on generated answer length (0: the task's own).", minimum=0,
            per_cell=True, default_text="the task's own"),
    Setting("retention", "bool", True, "Measure retention (probe loss, other tasks) for trained methods.",
            per_cell=True, flag=None),
    # Each example is answered twice (base model and trained model) per other task; generation dominates and
    # costs per decoding step, so the default stays small (docs/measurements.md, Retention: measured cost).
    Setting("retention_examples", "int", 4, "Test examples per other registered task scored zero-shot before and "
            "after training (0: no cross-task retention).", minimum=0, per_cell=True),
    Setting("quick", "bool", False, "A smoke run (set by --quick): its verdict says it supports no conclusion.",
            affects_result=False, flag=None),
)
BY_NAME = {s.name: s for s in SETTINGS}

RunSettings = make_dataclass(
    "RunSettings",
    [(s.name, Any, field(default_factory=lambda d=s.default: copy.deepcopy(d))) for s in SETTINGS],
)
RunSettings.__doc__ = "Everything `tbench run` needs (fields from SETTINGS). Empty ``methods`` means the default set (methods whose ``in_default_run`` is true)."
RunSettings.__module__ = __name__


def cell_default(name: str) -> Any:
    """The default of a per-cell setting as a ``CellSpec`` field (see ``Setting.cell_value``)."""
    return BY_NAME[name].cell_default


def outside_cache_key() -> set[str]:
    """Names of settings that do not change a cell's result, so stay out of its cache key."""
    return {s.name for s in SETTINGS if not s.affects_result}


# --quick: a smoke run of every method that finishes in a few minutes on a 2-core CPU.
# Its answers are cut at 24 tokens: decoding dominates a smoke run on a CPU, and its quality numbers are
# not meant for comparison.
QUICK = {"steps": 2, "eval_examples": 4, "val_examples": 4, "val_every": 2, "samples": 2, "latency": False,
         "max_new_tokens": 24, "retention_examples": 2, "quick": True}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _subject(where: str, name: str) -> str:
    """A flag names itself ("--steps must be ..."); a file names the key ("suite.yaml: key 'steps': steps must ...")."""
    return where if where.startswith("--") else f"{where}: {name}"


def _check_seeds(value: Any, where: str) -> list[int]:
    if isinstance(value, str):
        try:
            value = [int(part) for part in value.split(",") if part.strip()]
        except ValueError:
            raise UsageError(f"{where}: expected comma-separated integers from 0 to {MAX_SEED}, e.g. 0,1,2 (got {brief_repr(value)})") from None
    if _is_int(value):
        value = [value]
    if not isinstance(value, list) or not value or not all(_is_int(s) and 0 <= s <= MAX_SEED for s in value):
        raise UsageError(f"{_subject(where, 'seeds')} must be a non-empty list of integers from 0 to {MAX_SEED}, e.g. 0,1,2 (got {brief_repr(value)})")
    repeated = sorted({s for s in value if value.count(s) > 1})
    if repeated:
        # Refused rather than dropped: a repeated seed is a typo, and running it twice would fake a spread of 0.
        raise UsageError(f"{where}: seed {', '.join(map(str, repeated))} given more than once; give distinct seeds, e.g. 0,1,2")
    return value


def _check_names(setting: Setting, value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{_subject(where, setting.name)} must be a list of names (got {brief_repr(value)})")
    return list(dict.fromkeys(value)) if setting.kind == "names" else value


_METHOD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+-]*")  # no "." (--set NAME.OPTION) and no "," (--methods a,b)


def _check_named_paths(value: Any, where: str) -> dict[str, str]:
    """NAME=FILE strings (flags) or a NAME: FILE mapping (suite file) as {NAME: FILE}."""
    example = "e.g. --method-config vera-256=experiments/vera/adapter_config.json"
    if isinstance(value, list):
        pairs = {}
        for item in value:
            name, sep, path = str(item).partition("=")
            if not sep or not name.strip() or not path.strip():
                raise UsageError(f"{where} '{item}': expected NAME=FILE, {example}")
            if name.strip() in pairs:
                raise UsageError(f"{where}: method name '{name.strip()}' given twice; give each configuration its own name")
            pairs[name.strip()] = path.strip()
        value = pairs
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()):
        raise UsageError(f"{_subject(where, 'method_files')} must map method names to config files, "
                         f"e.g. method_files: {{vera-256: vera.json}} (got {brief_repr(value)})")
    for name in value:
        if not _METHOD_NAME.fullmatch(name):
            raise UsageError(f"{where}: method name '{name}' may hold only letters, digits, '-', '_' and '+', "
                             f"starting with a letter or digit; {example}")
    return value


def check_value(name: str, value: Any, where: str) -> Any:
    """Validate one setting's value (type, choices, range, finite); ``where`` names its source for the error."""
    setting = BY_NAME[name]
    kind = setting.kind
    subject = _subject(where, name)
    if kind == "seeds":
        return _check_seeds(value, where)
    if kind in ("names", "paths"):
        return _check_names(setting, value, where)
    if kind == "named_paths":
        return _check_named_paths(value, where)
    if kind == "options":
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise UsageError(f"{subject} must map method names to option mappings, e.g. options: {{prompt: {{num_virtual_tokens: 50}}}}")
        return value
    if value is None and setting.default is None:
        return None
    if kind == "bool":
        if not isinstance(value, bool):
            raise UsageError(f"{subject} must be true or false (got {brief_repr(value)})")
        return value
    if kind == "int" and not _is_int(value):
        raise UsageError(f"{subject} must be an integer (got {brief_repr(value)})")
    if kind == "float":
        if not (_is_int(value) or isinstance(value, float)):
            raise UsageError(f"{subject} must be a number (got {brief_repr(value)})")
        value = float(value)
        if not math.isfinite(value):
            raise UsageError(f"{subject} must be a finite number (got {brief_repr(value)})")
    if kind == "str" and not isinstance(value, str):
        raise UsageError(f"{subject} must be a string (got {brief_repr(value)})")
    problem = range_problem(value, setting.choices or None, setting.minimum, setting.maximum)
    if problem:
        raise UsageError(f"{subject} {problem} (got {brief_repr(value)})")
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
    checked = {}
    for key, value in data.items():
        if key not in BY_NAME:
            raise UsageError(f"{where}: key '{key}': {did_you_mean('setting', str(key), list(BY_NAME))}")
        checked[key] = check_value(key, value, f"{where}: key '{key}'")
    return checked


def build_settings(quick: bool, suite: dict[str, Any], flags: dict[str, Any]) -> Any:
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
            if key == "method_files":
                settings.method_files.update(value)  # a flag adds to (or replaces one name of) the suite file's
                continue
            setattr(settings, key, value)
    if settings.patience and not settings.val_examples:
        raise UsageError("early stopping (patience) needs validation examples; set val_examples to at least 1")
    return settings


def click_options(command: Any) -> Any:
    """Decorate a click command with one option per setting that has a flag (values arrive unchecked)."""
    import click

    for setting in reversed([s for s in SETTINGS if s.cli_flag]):
        default = setting.default_text or (",".join(map(str, setting.default)) if isinstance(setting.default, (list, dict))
                                           else setting.default)
        help_text = f"{setting.help} (default: {default})" if default not in ("", False) else setting.help
        kwargs: dict[str, Any] = {"help": help_text, "default": None}
        if setting.kind == "bool":
            kwargs["is_flag"] = True
        elif setting.kind in ("paths", "named_paths"):
            kwargs.update(multiple=True, type=click.Path(), default=())
        elif setting.choices:
            kwargs["type"] = click.Choice([str(c) for c in setting.choices])
        elif setting.kind == "int":
            kwargs["type"] = int
        elif setting.kind == "float":
            kwargs["type"] = float
        command = click.option(setting.cli_flag, "setting_" + setting.name, **kwargs)(command)
    return command


def flag_values(values: dict[str, Any]) -> dict[str, Any]:
    """Check the ``setting_*`` values click parsed; absent flags become None (not given)."""
    flags: dict[str, Any] = {}
    for setting in SETTINGS:
        value = values.get("setting_" + setting.name)
        if value is None or (setting.kind in ("paths", "named_paths") and not value):
            continue
        if setting.kind in ("paths", "named_paths"):
            value = list(value)
        elif setting.kind == "names":
            value = [part.strip() for part in value.split(",") if part.strip()]
            if not value:
                raise UsageError(f"{setting.cli_flag}: expected a comma-separated list of names, got '{values['setting_' + setting.name]}'")
        flags[setting.name] = check_value(setting.name, value, setting.cli_flag)
    return flags
