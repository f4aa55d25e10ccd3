"""Use what a run trained: load a cell's saved state and answer new inputs (``tbench generate``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuning_bench.api.errors import UsageError
from tuning_bench.api.kinds import ModelKind, TaskKind
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
    cells = [c for c in cells if c.task == task and (seed is None or c.seed == seed)]
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

    def answer(self, texts: list[str]) -> list[str]:
        import torch

        from tuning_bench.engine.data import Encoded
        from tuning_bench.engine.evaluation import decode, label_logprobs
        from tuning_bench.engine.generation import GenerationSettings, eos_ids_for, generate_all
        from tuning_bench.engine.prompting import resolve_format
        from tuning_bench.engine.trainer import make_feeder

        rendered = [self.render(t) for t in texts]
        device = torch.device("cpu")
        if self.kind is ModelKind.ENCODER:
            batch = self.tokenizer(rendered, padding=True, return_tensors="pt")
            with torch.no_grad():
                logits = self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
            return [self.task.labels[i] for i in logits.argmax(-1).tolist()]
        fmt = resolve_format(self.tokenizer, self.cell.config["prompt_format"])
        prompts = [self.tokenizer(fmt.prompt(self.tokenizer, self.task.instruction, self.shots, r),
                                  add_special_tokens=fmt.style == "plain").input_ids for r in rendered]
        if self.task.kind is TaskKind.CLASSIFICATION:
            label_ids = [self.tokenizer(fmt.answer(label), add_special_tokens=False).input_ids for label in self.task.labels]
            feeder = make_feeder(self.model, self.kind, self.tokenizer.pad_token_id, device, None)
            scores = label_logprobs(self.model, [Encoded(p, []) for p in prompts], label_ids, feeder, 8)
            return [self.task.labels[int(i)] for i in scores.argmax(dim=1)]
        settings = GenerationSettings(self.task.max_new_tokens, eos_ids_for(self.tokenizer, self.model, fmt.answer_end),
                                      self.tokenizer.pad_token_id, 8, self.decoding, device)
        return [decode(self.tokenizer, out) for out in generate_all(self.model, prompts, settings)]


def load_trained(run_dir: Path, catalog: Catalog, method: str, task: str | None = None, seed: int | None = None) -> Trained:
    """Rebuild the model of one cell of a run from its saved state, through the method that saved it."""
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
    if method not in catalog.methods:
        raise UsageError(f"method '{method}' is not installed here, and only it can load its trained state; "
                         "install the plugin that provides it")
    method_obj = catalog.methods.get(method)
    task_obj = resolve_task(catalog, cell.task)
    source = resolve_model(catalog, cell.config["model"], cell.config["trust_remote_code"])
    source.prepare()
    import torch

    torch.manual_seed(cell.seed)
    loaded = source.load(task_kind=task_obj.kind, labels=task_obj.labels, trust_remote_code=cell.config["trust_remote_code"])
    try:
        model = method_obj.load_state(loaded, task_obj, cell.method_config, state_dir).eval()
    except Exception as exc:  # peft, transformers and safetensors raise many types for a missing or truncated file
        reason = (str(exc).strip().splitlines() or [""])[0][:160]
        raise UsageError(f"the trained state in {state_dir} is missing or damaged ({type(exc).__name__}: {reason}); "
                         f"{fix}") from None
    shots = [(s["input"], s["target"]) for s in prompt.get("shots", [])]
    return Trained(model, loaded.tokenizer, loaded.kind, task_obj, cell, shots, method_obj.decoding)
