"""``tbench export RUN --method M DIR``: a cell's trained state as a folder to share, with a model card.

The state is copied as the method saved it (for PEFT methods PEFT's own adapter format, which
``PeftModel.from_pretrained`` loads as it is), beside ``tbench-prompt.json`` (the prompt context it
was evaluated with) and a ``README.md`` card that states the task, the headline metric with its 95 %
interval, the training budget and the package versions. Everything in the card that comes from the
record (names, descriptions, options) goes through ``md_text``: a task's text is user input.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tuning_bench.api.errors import UsageError
from tuning_bench.api.method import FULL_MODEL, PROMPT_ONLY
from tuning_bench.api.peft_method import PEFT_ADAPTER
from tuning_bench.report.markdown import md_text
from tuning_bench.report.tables import format_bytes, format_count, format_interval, format_seconds, format_value
from tuning_bench.report.verdicts import cell_intervals
from tuning_bench.run.inference import find_cell
from tuning_bench.run.records import CellRecord, Measurements, RunDocument, StateInfo
from tuning_bench.run.results import load_document

CARD = "README.md"  # also the name PEFT gives its own (empty) card in the state folder; ours replaces it


def _state_dir(run_dir: Path, cell: CellRecord) -> Path:
    state = cell.state or StateInfo()
    keep = cell.config.get("keep", "adapters")
    if state.kind != PROMPT_ONLY and not state.kept:
        flag = "--keep all" if state.kind == FULL_MODEL else "--keep adapters (the default) or --keep all"
        raise UsageError(f"the trained state of {cell.label} was not kept (the run used --keep {keep}); "
                         f"run it again with {flag} to keep it")
    state_dir = run_dir / "cells" / str(cell.key) / state.path
    missing = [name for name in state.files if name != CARD and not (state_dir / name).is_file()]
    if not state_dir.is_dir() or missing:
        raise UsageError(f"the trained state in {state_dir} is missing ({', '.join(missing) or 'the folder'}); run the "
                         f"cell again: remove {run_dir / 'cells' / (str(cell.key) + '.json')} and repeat the run")
    return state_dir


def export_state(run_dir: Path, method: str, dest: Path, task: str | None = None, seed: int | None = None) -> Path:
    """Copy the state of ``method``'s cell (the only task, the smallest seed unless given) to ``dest`` with a card."""
    if not (run_dir / "results.json").is_file():
        raise UsageError(f"no such run: {run_dir} has no results.json; give the --out folder of a `tbench run`")
    document = load_document(run_dir)
    cell = find_cell(document, method, task, seed)
    state_dir = _state_dir(run_dir, cell)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(f"{dest} exists and is not an empty folder; choose a new folder to export into")
    try:
        dest.mkdir(parents=True, exist_ok=True)
        for path in sorted(state_dir.rglob("*")):
            relative = path.relative_to(state_dir)
            if path.is_file() and str(relative) != CARD:
                (dest / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dest / relative)
        (dest / CARD).write_text(model_card(document, cell), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {exc.filename or dest} ({exc.strerror or exc}); choose another folder") from None
    return dest


def _verdict_line(document: RunDocument, cell: CellRecord) -> str | None:
    """The method's mean over the run's seeds with the verdict's paired-bootstrap interval, when computed."""
    for verdict in document.verdicts or []:
        if verdict.get("task") == cell.task and verdict.get("computed"):
            entry = (verdict.get("methods") or {}).get(cell.method)
            if entry:
                seeds = entry.get("seeds")
                return (f"{format_value('metric', entry.get('mean'))}, 95 % CI {format_interval(entry.get('ci95'))} "
                        f"(the run's verdict: mean over {seeds} seed{'s' if seeds != 1 else ''}, paired bootstrap over "
                        f"{verdict.get('examples')} test examples)")
    return None


def _usage(cell: CellRecord, kind: str | None) -> list[str]:
    model = str(cell.config.get("model", ""))
    base = json.dumps(model).replace("`", "'")
    auto = "AutoModelForSequenceClassification" if cell.model_info.get("kind") == "encoder" else "AutoModelForCausalLM"
    note = ("" if "/" in model else
            f"`{md_text(model)}` is a tbench model source: `tbench models fetch {md_text(model)}` prepares its "
            "weights, and `tbench models` says where they come from.")
    # A registered source's name is no Hub id: say whose weights to load instead of a call that would fail.
    where = (f"{base})  # the base model the run trained on" if "/" in model else
             f"BASE)  # BASE: a Hub id or folder with the weights of tbench's model source {base}")
    if kind == PEFT_ADAPTER:
        lines = ["```python", "from peft import PeftModel", f"from transformers import {auto}", "",
                 f"base = {auto}.from_pretrained({where}",
                 'model = PeftModel.from_pretrained(base, "path/to/this/folder")', "```"]
    else:
        lines = [f"The state is tbench's format `{md_text(kind or '—')}`; the method that saved it loads it "
                 "(`tbench generate` answers with it)."]
    lines += ["", note] if note else []
    lines += ["", "The prompt it was trained and evaluated with (instruction, template, format, shots) is in "
              "`tbench-prompt.json`; `tbench generate` answers exactly as the evaluation did."]
    return lines


def model_card(document: RunDocument, cell: CellRecord) -> str:
    """The README.md of an exported state: what it is, how good (with a 95 % interval), what it cost, versions."""
    m = cell.measurements or Measurements()
    state = cell.state or StateInfo()
    task_info = cell.task_info or {}
    headline = cell.headline
    metric = headline.metric if headline else "—"
    interval = cell_intervals(cell).get(metric)
    examples = m.eval_examples
    this_state = (f"{format_value('metric', headline.value if headline else None)}"
                  + (f", 95 % CI {format_interval(interval)} (bootstrap over its {examples} test examples)"
                     if interval else ""))
    verdict = _verdict_line(document, cell)
    options = ", ".join(f"{k}={json.dumps(v)}" for k, v in cell.method_config.items()) or "—"
    direction = "higher" if (headline.higher_is_better if headline else True) else "lower"
    steps = m.steps
    budget = (f"{format_count(steps)} steps of {cell.config.get('batch_size', '—')} examples"
              + (f" (stopped early; best at step {m.best_step})" if m.stopped_early else "")
              + f", {format_seconds(m.train_seconds)} of training on {cell.environment.get('device_name', '—')}"
              + f" in {cell.config.get('precision', '—')}; {format_count(m.trainable_params)} trainable parameters"
              + (f" ({m.trainable_percent:.3g} % of {format_count(m.total_params)})" if m.trainable_percent else "")
              if steps else "no training (a prompt only)")
    versions = ", ".join(f"{name} {version}" for name, version in (cell.environment.get("packages") or {}).items())
    files = ", ".join(f"`{md_text(name)}`" for name in sorted(state.files) if name != CARD)
    rows = [
        ("Task", f"{md_text(cell.task)} ({md_text(task_info.get('kind', '—'))}): {md_text(task_info.get('description', ''))}"),
        ("Base model", f"{md_text(cell.config.get('model', '—'))} (fingerprint {md_text(cell.model_info.get('fingerprint', '—'))})"),
        ("Method", f"{md_text(cell.method)}; options {md_text(options)}; seed {cell.seed}"),
        (f"{md_text(metric)} ({direction} is better), this state", md_text(this_state)),
        (f"{md_text(metric)}, the method in its run", md_text(verdict or "no verdict computed")),
        ("Budget", md_text(budget)),
        ("State", f"{md_text(state.kind or '—')}: {files}; weights {format_bytes(state.saved_bytes)}"),
        ("Versions", md_text(versions or "—")),
        ("Run", f"{md_text(document.command or '—')} ({md_text(document.created or '—')})"),
    ]
    front = ["---"] + (["library_name: peft"] if state.kind == PEFT_ADAPTER else [])
    front += ["tags:", "- tuning-bench", f"- {json.dumps(cell.method)}", "---", ""]
    lines = front + [f"# {md_text(cell.method)} on {md_text(cell.task)}", "",
                     "A trained state exported by tuning_bench (`tbench export`), measured by the run that trained it.",
                     "", "| | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    lines += ["", "## Use it", ""] + _usage(cell, state.kind)
    return "\n".join(lines) + "\n"
