"""report.md: the comparison as GitHub-flavoured Markdown, with the plots as relative image links."""

from __future__ import annotations

import html
from typing import Any

from tuning_bench.report.plots import plot_files
from tuning_bench.run.records import RunDocument, as_document
from tuning_bench.report.verdicts import VERDICT_HEADER, headline_intervals, verdict_rows, verdicts_of
from tuning_bench.report.facts import DEFINITIONS, measurement_facts, method_settings
from tuning_bench.report.tables import (TaskView, best_methods, build_tasks, display_value, failed_cells, format_interval,
                                        headline_label, method_label, order_sentence, pending_note, sharing_note,
                                        sweep_rows)

SAMPLE_CHARS = 300  # a long generation would make the side-by-side table unreadable; the JSON has it whole


def md_text(value: Any, limit: int | None = None) -> str:
    """Text from the record made inert inside a Markdown table cell (model output can contain anything)."""
    text = str(value)
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    text = html.escape(text, quote=False)  # raw HTML in Markdown would be rendered, not shown
    for char in "\\`*_[]|#~":
        text = text.replace(char, "\\" + char)
    return text.replace("\r\n", "\n").replace("\n", "<br>")


def _table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> list[str]:
    align = align or ["left"] * len(header)
    rule = ["---:" if a == "right" else "---" for a in align]
    return ["| " + " | ".join(cells) + " |" for cells in (header, rule, *rows)]


def _main_table(view: TaskView, intervals: dict[str, Any]) -> list[str]:
    columns = view.columns
    best = {c.key: best_methods(view.rows, c) for c in columns}
    families = int(view.has_families)  # 1: a Family column leads the table
    header = ["Family"] * families + ["Method", "n"] + [md_text(headline_label(view) if c.key == "headline" else c.label)
                                                       for c in columns]
    ci_at = 3 + families  # the verdict's interval goes beside the headline it qualifies
    if intervals:
        header.insert(ci_at, "95 % CI")
    rows = []
    for row in view.rows:
        cells = [md_text(row.family or "—")] * families + [md_text(method_label(row)), f"{row.headline.n}/{row.cells}"]
        for column in columns:
            text = display_value(row, column)
            cells.append(f"**{text}**" if row.method in best[column.key] else text)
        if intervals:
            cells.insert(ci_at, format_interval(intervals.get(row.method)))
        rows.append(cells)
    return _table(header, rows, ["left"] * (1 + families) + ["right"] * (len(header) - 1 - families))


def _task_section(view: TaskView, plots: list[tuple[str, str]], intervals: dict[str, Any]) -> list[str]:
    direction = "higher" if view.higher_is_better else "lower"
    lines = [f"## Task: {md_text(view.name)}", "",
             f"Kind: {md_text(view.kind or '—')}. Headline metric: **{md_text(view.headline_metric)}** "
             f"({direction} is better). {order_sentence(view)}", ""]
    if view.rows:
        lines += _main_table(view, intervals)
        lines += ["", "**Bold** marks the best value in a column (ties all marked; none when all values are equal). "
                      "Trainable parameters, trainable %, train time and saved size compare only methods that train. "
                      "n = seeds with a headline value / cells run. The headline is the mean over seeds, ± the sample "
                      "standard deviation where a method has two or more seeds"
                      + (" and its paired-bootstrap 95 % CI from the verdict" if intervals else "")
                      + ". Other quality metrics are means over seeds."
                      + (f" {note}" if (note := sharing_note(view)) else ""), ""]
    else:
        lines += ["No method produced a result for this task.", ""]
    if view.not_applicable:
        lines += ["**Not applicable:**", ""]
        lines += [f"- {md_text(method)}: {md_text(reason)}" for method, reason in view.not_applicable]
        lines.append("")
    if view.sweep:
        lines += _sweep_section(view)
    lines += ["### Plots", ""]
    for filename, caption in plots:
        lines += [f"![{md_text(filename.removesuffix('.png'))}](plots/{filename})", "", f"*{md_text(caption)}*", ""]
    lines += _samples_section(view)
    lines += _learned_section(view)
    return lines


def _sweep_section(view: TaskView) -> list[str]:
    parameter = view.sweep[0].get("parameter", "value")
    selected_by = view.sweep[0].get("selected_by", "")
    lines = ["### Sweep", "",
             f"Tried values of `{md_text(parameter)}` per method; chosen by {md_text(selected_by)}. "
             "The table above uses only the chosen trial's cells.", ""]
    swept, unswept = sweep_rows(view)
    rows = [[md_text(r.method), md_text(r.value), f"**{r.mean_val_loss}**" if r.chosen else r.mean_val_loss, r.cells_ok,
             "chosen" if r.chosen else ""] for r in swept]
    if rows:
        lines += _table(["Method", md_text(parameter), "Mean val loss", "Seeds ok", ""], rows,
                        ["left", "right", "right", "right", "left"])
        lines.append("")
    if unswept:
        lines += [f"Not swept (no `{md_text(parameter)}`): {', '.join(md_text(m) for m in unswept)}.", ""]
    return lines



def _samples_section(view: TaskView) -> list[str]:
    samples = view.samples
    if not samples.rows:
        return []
    lines = ["### Sample outputs", "", f"The same test inputs for every method, seed {samples.seed}.", ""]
    header = ["Input", "Reference"] + [md_text(m) for m in samples.methods]
    rows = []
    for text, reference, predictions in samples.rows:
        shown = ["—" if p is None else ("*(empty)*" if p == "" else md_text(p, SAMPLE_CHARS)) for p in predictions]
        rows.append([md_text(text, SAMPLE_CHARS), md_text(reference, SAMPLE_CHARS)] + shown)
    return lines + _table(header, rows) + [""]


def _learned_section(view: TaskView) -> list[str]:
    if not view.learned_prompts:
        return []
    lines = ["### Learned prompts", "", "The tokens a method trained and put in front of every input above, "
             "decoded to text.", ""]
    rows = [[md_text(p.method), str(p.seed), str(p.tokens), md_text(p.text)] for p in view.learned_prompts]
    return lines + _table(["Method", "Seed", "Tokens", "Prompt"], rows, ["left", "right", "right", "left"]) + [""]


def _failures(data: RunDocument) -> list[str]:
    failures = failed_cells(data)
    lines = ["## Failures", ""]
    if not failures:
        return lines + ["No cell failed.", ""]
    rows = [[md_text(c.task), md_text(c.method), str(c.seed), md_text(c.trial or "—"),
             md_text(c.error or "no error recorded")] for c in failures]
    return lines + _table(["Task", "Method", "Seed", "Trial", "Error"], rows) + [""]


def _how_measured(data: RunDocument) -> list[str]:
    lines = ["## How measured", ""]
    lines += [f"- **{label}:** {md_text(value)}" for label, value in measurement_facts(data)]
    lines += ["", "Method settings:", ""]
    lines += [f"- {md_text(method)}: {md_text(options)}" for method, options in method_settings(data)]
    lines += ["", "Definitions (each in full in docs/measurements.md):", ""]
    lines += [f"- **{label}.** {text}" for label, text in DEFINITIONS]
    return lines + [""]


def _verdicts(verdicts: list[dict[str, Any]]) -> list[str]:
    lines = ["## Verdict", ""]
    for verdict in verdicts:
        lines += [f"### {md_text(verdict['task'])}", ""]
        lines += [f"- {md_text(sentence)}" for sentence in verdict["summary"]]
        lines.append("")
        if verdict["computed"]:
            lines += _table([md_text(h) for h in VERDICT_HEADER], [[md_text(c) for c in row] for row in verdict_rows(verdict)],
                            ["left", "right", "right", "right", "right", "left"])
            lines += ["", f"Paired bootstrap over {verdict['examples']} shared test examples (and seeds), "
                          f"{verdict['resamples']} resamples, seed {verdict['bootstrap_seed']}; see docs/measurements.md.", ""]
    return lines


def render_markdown(data: RunDocument | dict[str, Any], views: list[TaskView] | None = None) -> str:
    """The whole report as Markdown; images are linked as plots/<name>.png next to report.md."""
    data = as_document(data)
    views = build_tasks(data) if views is None else views
    files = plot_files(views)
    verdicts = verdicts_of(data)
    lines = ["# tbench report", ""] + _verdicts(verdicts)
    run = data.run
    seeds = ", ".join(map(str, run.seeds or [])) or "—"
    lines += [f"Model **{md_text(run.model or '—')}**, {len(views)} task(s), "
              f"{len(run.methods or [])} method(s), seeds {md_text(seeds)}, "
              f"{md_text('—' if run.steps is None else run.steps)} training steps. See *How measured* at the end.", ""]
    note = pending_note(data)
    if note:
        message, pending = note
        lines += [f"> **Warning:** {md_text(message)}", ">"]
        lines += [f"> - {md_text(label)}" for label in pending]
        lines.append("")
    for view in views:
        lines += _task_section(view, files[view.name], headline_intervals(verdicts, view.name))
    lines += _failures(data)
    lines += _how_measured(data)
    return "\n".join(lines).rstrip("\n") + "\n"
