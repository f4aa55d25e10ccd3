"""Use what a run trained: load a cell's saved state and answer new inputs (``tbench generate``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuning_bench.api.errors import UsageError
from tuning_bench.api.kinds import ModelKind
from tuning_bench.host.plugins import Catalog
from tuning_bench.run.records import CellRecord, RunDocument, StateInfo, as_document
from tuning_bench.run.results import load_document
from tuning_bench.engine.state import load_prompt
from tuning_bench.api.task import template_fields


def find_cell(data: RunDocument | dict[str, Any], method: str, task: str | None, seed: int | None) -> CellRecord:
    """The finished cell of ``method`` (and task/seed when given; else the only task and smallest seed)."""
    document = as_document(data)
    cells = [c for c in document.shown_cells() if c.method == method]
    if not cells:
        known = sorted({c.method for c in document.cells})
        raise UsageError(f"this run has no cell for method '{method}'; it has: {', '.join(known)}")
    if task is None:
        tasks = sorted({c.task for c in cells})
        if len(tasks) > 1:
            raise UsageError(f"this run has several tasks ({', '.join(tasks)}); choose one with --task")
        task = tasks[0]
    cells = [c for c in cells if task in (c.task, c.config.get("task")) and (seed is None or c.seed == seed)]
    if not cells:
        raise UsageError(f"no cell for method '{method}' on task '{task}'" + (f" with seed {seed}" if seed is not None else ""))
    cell = min(cells, key=lambda c: c.seed)
    if not cell.ok:
        raise UsageError(f"{task}/{method}/seed {cell.seed} did not finish ({cell.status}: {cell.error})")
    return cell


@dataclass
class Trained:
    """A model with a cell's trained state applied, and the cell's prompt context."""

    model: Any
    tokenizer: Any
    kind: ModelKind
    task: Any
    cell: CellRecord
    shots: list[tuple[str, str]]
    decoding: str  # the method's ``Method.decoding``
    device: Any = None  # torch.device the model is on: the run's unless overridden
    precision: str = "fp32"  # "fp32" or "bf16" (autocast): the run's unless overridden

    def render(self, text: str) -> str:
        """Fill the task's input template from user text (a single-field template) or a JSON object."""
        fields = template_fields(self.task.input_template)
        if not text.strip():
            raise UsageError("an input is empty; give the text to answer, e.g. tbench generate RUN --method NAME \"...\"")
        if text.lstrip().startswith("{"):
            try:
                example = json.loads(text)
            except json.JSONDecodeError as exc:
                raise UsageError(f"input looks like JSON but is not valid ({exc.msg})") from None
        elif len(set(fields)) == 1:
            example = {fields[0]: text}
        else:
            raise UsageError(f"task {self.task.name} needs fields {', '.join(fields)}: pass a JSON object, "
                             f"e.g. '{json.dumps({f: '...' for f in fields})}'")
        missing = [f for f in fields if f not in example]
        if missing:
            raise UsageError(f"input lacks field(s) {', '.join(missing)} required by task {self.task.name}")
        return self.task.render_input(example)

    def setting(self, name: str) -> Any:
        """A run setting of the cell, or the cell default where an older record lacks it."""
        from tuning_bench.engine.cell import CellSpec

        return self.cell.config.get(name, CellSpec.__dataclass_fields__[name].default)

    def answer(self, texts: list[str]) -> list[str]:
        """Answer new inputs as the run's evaluation did: the strategy for the model kind and task kind, the
        run's prompt format, ``max_length`` truncation, evaluation batch size, device and precision."""
        import torch

        from tuning_bench.engine.prompting import resolve_format
        from tuning_bench.engine.strategies import Answerer, PromptContext, generation_settings, strategy_for
        from tuning_bench.engine.trainer import make_feeder

        rendered = [self.render(t) for t in texts]
        strategy = strategy_for(self.kind, self.task.kind)
        causal = self.kind is ModelKind.CAUSAL_LM
        fmt = resolve_format(self.tokenizer, self.setting("prompt_format")) if causal else None
        context = PromptContext(self.tokenizer, fmt, self.task.instruction, self.shots, self.setting("max_length"))
        feeder = make_feeder(self.model, self.kind, self.tokenizer.pad_token_id, self.device,
                             torch.bfloat16 if self.precision == "bf16" else None, strategy)
        batch_size = self.setting("eval_batch_size")
        settings = None
        if causal:
            settings = generation_settings(self.tokenizer, self.model, fmt,
                                           self.setting("max_new_tokens") or self.task.max_new_tokens,
                                           batch_size, self.decoding, feeder)
        answerer = Answerer(self.model, self.tokenizer, self.task, feeder, batch_size, settings,
                            strategy.label_ids(context, self.task))
        return strategy.answer(answerer, [strategy.encode_input(context, r) for r in rendered])


def load_trained(run_dir: Path, catalog: Catalog, method: str, task: str | None = None, seed: int | None = None,
                 device: str | None = None, precision: str | None = None) -> Trained:
    """Rebuild the model of one cell of a run from its saved state, through the method that saved it, on the
    device and in the precision the run recorded unless ``device`` / ``precision`` override them."""
    from tuning_bench.host.lookup import resolve_model, resolve_task

    cell = find_cell(load_document(run_dir), method, task, seed)
    state = cell.state or StateInfo()
    state_dir = run_dir / "cells" / str(cell.key) / state.path
    if state.kind != "prompt-only" and not state.kept:
        raise UsageError(f"the trained state of {cell.task}/{method} was not kept (--keep {cell.config['keep']}); "
                         "re-run with --keep all to keep full models")
    fix = (f"run the same `tbench run` again after removing {run_dir / 'cells' / (str(cell.key) + '.json')}, "
           "which retrains that cell")
    try:
        prompt = load_prompt(state_dir)
    except (OSError, ValueError) as exc:
        what = "is missing" if isinstance(exc, FileNotFoundError) else f"is damaged ({type(exc).__name__})"
        raise UsageError(f"the trained state in {state_dir} {what}; {fix}") from None
    runner = cell.config.get("runs_as") or method  # a --method-config name is run (and loaded) by another method
    if runner not in catalog.methods:
        raise UsageError(f"method '{runner}' is not installed here, and only it can load its trained state; "
                         "install the plugin that provides it")
    method_obj = catalog.methods.get(runner)
    # The task as the run was given it (a registered name or a YAML file's path); records show its name.
    task_obj = resolve_task(catalog, cell.config.get("task", cell.task))
    source = resolve_model(catalog, cell.config["model"], cell.config["trust_remote_code"])
    source.prepare()
    import torch

    from tuning_bench.models.quantization import quantized_loading, unavailable

    base_quant = cell.config.get("base_quant")  # a quantized base is loaded quantized again, as the run had it
    target = _device(device or cell.config.get("device", "cpu"))
    reason = unavailable(base_quant, target) if base_quant else None
    if reason:
        raise UsageError(f"the run loaded its base model quantized: {reason}")
    compute = torch.bfloat16 if (precision or cell.config.get("precision")) == "bf16" else torch.float32
    torch.manual_seed(cell.seed)
    with quantized_loading(base_quant, target, compute):
        loaded = source.load(task_kind=task_obj.kind, labels=task_obj.labels,
                             trust_remote_code=cell.config["trust_remote_code"])
    try:
        model = method_obj.load_state(loaded, task_obj, cell.method_config, state_dir).eval()
    except Exception as exc:  # peft, transformers and safetensors raise many types for a missing or truncated file
        reason = (str(exc).strip().splitlines() or [""])[0][:160]
        raise UsageError(f"the trained state in {state_dir} is missing or damaged ({type(exc).__name__}: {reason}); "
                         f"{fix}") from None
    shots = [(s["input"], s["target"]) for s in prompt.get("shots", [])]
    trained = Trained(model, loaded.tokenizer, loaded.kind, task_obj, cell, shots, method_obj.decoding_for(cell.method_config))
    trained.device = _device(device or trained.setting("device"))
    trained.precision = precision or trained.setting("precision")
    trained.model = model.to(trained.device)
    return trained


def _device(name: str) -> Any:
    """The torch device ``name``, or a UsageError when this machine has none such (e.g. a run on a GPU)."""
    import torch

    if name == "auto":  # a record from before runs resolved their device: such runs ran on the CPU
        name = "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device '{name}'; use --device cpu or --device cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"the run used device '{name}', which this machine lacks; answer on the CPU with --device cpu")
    return device
