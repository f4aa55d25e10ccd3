"""report.html: one self-contained page (inline CSS, plots as base64 PNG data URIs, no external URL).

Every piece of text from the record goes through ``html.escape``: predictions are model output and
task or method names come from user files.
"""

from __future__ import annotations

import base64
import html
from typing import Any

from tuning_bench.report.plots import Plot, render_plots
from tuning_bench.report.verdicts import VERDICT_HEADER, verdict_rows, verdicts_of
from tuning_bench.run.records import RunDocument, as_document
from tuning_bench.report.facts import DEFINITIONS, measurement_facts, method_settings
from tuning_bench.report.tables import (TaskView, best_methods, build_tasks, display_value, failed_cells, method_label,
                                        pending_note, sweep_rows)

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto; max-width: 82rem;
       padding: 0 1rem; color: #1f2328; line-height: 1.45; }
h1, h2, h3 { line-height: 1.2; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; margin-top: 2.5rem; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .9rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .55rem; vertical-align: top; }
th { background: #f6f8fa; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.best { font-weight: 700; background: #dafbe1; }
td.text { white-space: pre-wrap; max-width: 24rem; overflow-wrap: anywhere; }
.wide { overflow-x: auto; }
.note { color: #57606a; font-size: .9rem; }
.warning { border: 1px solid #d4a72c; background: #fff8c5; padding: .6rem 1rem; border-radius: 6px; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #d0d7de; }
figcaption { color: #57606a; font-size: .85rem; }
code { background: #f6f8fa; padding: 0 .25rem; border-radius: 4px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _cell(text: str, classes: str = "") -> str:
    return f'<td class="{classes}">{text}</td>' if classes else f"<td>{text}</td>"


def _table(header: list[str], rows: list[str], caption: str | None = None) -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "\n".join(f"<tr>{r}</tr>" for r in rows)
    cap = f"<caption>{caption}</caption>" if caption else ""
    return f'<div class="wide"><table>{cap}\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table></div>'


def _main_table(view: TaskView) -> str:
    columns = view.columns
    best = {c.key: best_methods(view.rows, c) for c in columns}
    header = ["Method", "n"] + [_e(f"{c.label} (mean ± std)" if c.key == "headline" else c.label) for c in columns]
    rows = []
    for row in view.rows:
        cells = [_cell(_e(method_label(row))), _cell(f"{row.headline.n}/{row.cells}", "num")]
        for column in columns:
            text = display_value(row, column)
            cells.append(_cell(_e(text), "num best" if row.method in best[column.key] else "num"))
        rows.append("".join(cells))
    return _table(header, rows)


def _figure(plot: Plot) -> str:
    data = base64.b64encode(plot.png).decode("ascii")
    return (f'<figure><img alt="{_e(plot.caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(plot.caption)}</figcaption></figure>")


def _sweep(view: TaskView) -> list[str]:
    parameter = view.sweep[0].get("parameter", "value")
    parts = ["<h3>Sweep</h3>",
             f"<p>Tried values of <code>{_e(parameter)}</code> per method; chosen by "
             f"{_e(view.sweep[0].get('selected_by', ''))}. The table above uses only the chosen trial's cells.</p>"]
    swept, unswept = sweep_rows(view)
    rows = [_cell(_e(r.method)) + _cell(_e(r.value), "num") + _cell(_e(r.mean_val_loss), "num best" if r.chosen else "num")
            + _cell(_e(r.cells_ok), "num") + _cell("chosen" if r.chosen else "") for r in swept]
    if rows:
        parts.append(_table(["Method", _e(parameter), "Mean val loss", "Seeds ok", ""], rows))
    if unswept:
        parts.append(f"<p>Not swept (no <code>{_e(parameter)}</code>): {_e(', '.join(unswept))}.</p>")
    return parts


def _samples(view: TaskView) -> list[str]:
    samples = view.samples
    if not samples.rows:
        return []
    rows = []
    for text, reference, predictions in samples.rows:
        shown = [_cell("—") if p is None else _cell("<em>(empty)</em>" if p == "" else _e(p), "text") for p in predictions]
        rows.append(_cell(_e(text), "text") + _cell(_e(reference), "text") + "".join(shown))
    return ["<h3>Sample outputs</h3>", f"<p>The same test inputs for every method, seed {_e(samples.seed)}.</p>",
            _table(["Input", "Reference"] + [_e(m) for m in samples.methods], rows)]


def _task(view: TaskView, index: int, plots: list[Plot]) -> list[str]:
    direction = "higher" if view.higher_is_better else "lower"
    parts = [f'<h2 id="task-{index}">Task: {_e(view.name)}</h2>',
             f"<p>Kind: {_e(view.kind or '—')}. Headline metric: <strong>{_e(view.headline_metric)}</strong> "
             f"({direction} is better). Rows are sorted by it, best first.</p>"]
    if view.rows:
        parts.append(_main_table(view))
        parts.append('<p class="note">Highlighted: the best value in a column (ties all marked; none when all values '
                     "are equal). Trainable parameters, trainable %, train time and saved size compare only methods "
                     "that train. n = seeds with a headline value / cells run. Other quality metrics are means over "
                     "seeds.</p>")
    else:
        parts.append("<p>No method produced a result for this task.</p>")
    if view.not_applicable:
        items = "".join(f"<li>{_e(m)}: {_e(r)}</li>" for m, r in view.not_applicable)
        parts.append(f'<p><strong>Not applicable:</strong></p><ul class="not-applicable">{items}</ul>')
    if view.sweep:
        parts += _sweep(view)
    parts.append("<h3>Plots</h3>")
    parts += [_figure(p) for p in plots]
    parts += _samples(view)
    return parts


def _failures(data: RunDocument) -> list[str]:
    failures = failed_cells(data)
    parts = ['<h2 id="failures">Failures</h2>']
    if not failures:
        return parts + ["<p>No cell failed.</p>"]
    rows = [_cell(_e(c.task)) + _cell(_e(c.method)) + _cell(_e(c.seed), "num") + _cell(_e(c.trial or "—"))
            + _cell(_e(c.error or "no error recorded"), "text") for c in failures]
    return parts + [_table(["Task", "Method", "Seed", "Trial", "Error"], rows)]


def _how_measured(data: RunDocument) -> list[str]:
    facts = "".join(f"<dt>{_e(label)}</dt><dd>{_e(value)}</dd>" for label, value in measurement_facts(data))
    settings = "".join(f"<li>{_e(m)}: {_e(o)}</li>" for m, o in method_settings(data))
    definitions = "".join(f"<li><strong>{_e(label)}.</strong> {_e(text)}</li>" for label, text in DEFINITIONS)
    return ['<h2 id="how-measured">How measured</h2>', f'<dl class="facts">{facts}</dl>',
            f"<p>Method settings:</p><ul>{settings}</ul>",
            "<p>Definitions (each in full in docs/measurements.md):</p>", f"<ul>{definitions}</ul>"]


def _verdicts(data: RunDocument) -> list[str]:
    parts = ['<section id="verdict"><h2>Verdict</h2>']
    for verdict in verdicts_of(data):
        parts.append(f"<h3>{_e(verdict['task'])}</h3>")
        parts.append("<ul>" + "".join(f"<li>{_e(s)}</li>" for s in verdict["summary"]) + "</ul>")
        if verdict["computed"]:
            rows = ["".join(_cell(_e(c), "" if i in (0, 5) else "num") for i, c in enumerate(row))
                    for row in verdict_rows(verdict)]
            parts.append(_table([_e(h) for h in VERDICT_HEADER], rows))
            parts.append(f'<p class="note">Paired bootstrap over {verdict["examples"]} shared test examples (and seeds), '
                         f'{verdict["resamples"]} resamples, seed {verdict["bootstrap_seed"]}; see docs/measurements.md.</p>')
    return parts + ["</section>"]


def render_html(data: RunDocument | dict[str, Any], views: list[TaskView] | None = None,
                plots: dict[str, list[Plot]] | None = None) -> str:
    """The whole report as one HTML page that opens offline; plots are drawn unless passed in."""
    data = as_document(data)
    views = build_tasks(data) if views is None else views
    plots = render_plots(data, views) if plots is None else plots
    run = data.run
    seeds = ", ".join(map(str, run.seeds or [])) or "—"
    toc = "".join(f'<li><a href="#task-{i}">{_e(v.name)}</a></li>' for i, v in enumerate(views))
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>tbench report: {_e(run.model or '')}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
        "<h1>tbench report</h1>",
        *_verdicts(data),
        f"<p>Model <strong>{_e(run.model or '—')}</strong>, {len(views)} task(s), "
        f"{len(run.methods or [])} method(s), seeds {_e(seeds)}, {_e('—' if run.steps is None else run.steps)} training steps.</p>",
    ]
    note = pending_note(data)
    if note:
        message, pending = note
        items = "".join(f"<li>{_e(label)}</li>" for label in pending)
        parts.append(f'<div class="warning" id="pending"><strong>Warning:</strong> {_e(message)}<ul>{items}</ul></div>')
    parts.append(f'<nav><ul>{toc}<li><a href="#failures">Failures</a></li>'
                 '<li><a href="#how-measured">How measured</a></li></ul></nav>')
    for index, view in enumerate(views):
        parts += _task(view, index, plots.get(view.name, []))
    parts += _failures(data)
    parts += _how_measured(data)
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"
