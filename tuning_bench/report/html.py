"""report.html: one self-contained page (inline CSS and script, plots as base64 PNG data URIs, no URL).

Every piece of text from the record goes through ``html.escape``: predictions are model output and
task or method names come from user files. The one inline script (``SORT_SCRIPT``, a constant that
holds no data) makes the tables sortable by a click on a column header; numeric cells carry their
raw value in ``data-v`` (a number formatted here, never record text) so that "1.5 GiB" sorts above
"900 MiB".
"""

from __future__ import annotations

import base64
import html
from typing import Any

from tuning_bench.report.plots import Plot, render_plots
from tuning_bench.report.verdicts import VERDICT_HEADER, headline_intervals, verdict_rows, verdicts_of
from tuning_bench.run.records import RunDocument, as_document
from tuning_bench.report.facts import DEFINITIONS, measurement_facts, method_settings
from tuning_bench.report.tables import (TaskView, best_methods, build_tasks, display_value, failed_cells, format_interval,
                                        headline_label, method_label, order_sentence, pending_note, sharing_note,
                                        sweep_rows, to_number)

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
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " \\2195"; color: #8c959f; }
table.sortable th[aria-sort="ascending"]::after { content: " \\2191"; color: #1f2328; }
table.sortable th[aria-sort="descending"]::after { content: " \\2193"; color: #1f2328; }
"""

# Sorts a table.sortable by the clicked (or Enter/Space on the focused) header: by data-v where a cell
# has it, else by the number the text starts with ("[0.31, 0.35]" by 0.31), else by the text. Empty
# cells and "—" stay last in both directions. It reads and reorders rows only; it writes no text.
SORT_SCRIPT = """
(function () {
  function key(row, column) {
    var cell = row.cells[column];
    if (!cell) return null;
    var raw = cell.getAttribute("data-v");
    if (raw !== null) return raw === "" ? null : Number(raw);
    var text = cell.textContent.trim();
    if (text === "" || text === "\u2014") return null;
    var number = parseFloat(text.replace(/^[\\[(]/, "").replace(/,/g, ""));
    return isNaN(number) ? text.toLowerCase() : number;
  }
  function compare(x, y) {
    if (typeof x === typeof y) return x < y ? -1 : (x > y ? 1 : 0);
    return typeof x === "number" ? -1 : 1;
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var headers = table.querySelectorAll("thead th");
    headers.forEach(function (th, column) {
      function sort() {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        headers.forEach(function (other) { other.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a, column), y = key(b, column);
          if (x === null || y === null) return (x === null) - (y === null);
          return ascending ? compare(x, y) : compare(y, x);
        });
        rows.forEach(function (row) { body.appendChild(row); });
      }
      th.tabIndex = 0;
      th.title = "Sort by this column";
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sort(); }
      });
    });
  });
})();
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _cell(text: str, classes: str = "", value: Any = None) -> str:
    """A table cell; ``value`` (a number, or None for a missing one) becomes data-v, the key it sorts by."""
    number = to_number(value)
    sort = f' data-v="{number!r}"' if number is not None else (' data-v=""' if value is _MISSING else "")
    return f'<td class="{classes}"{sort}>{text}</td>' if classes else f"<td{sort}>{text}</td>"


_MISSING = object()  # a numeric cell without a value: sorts last


def _table(header: list[str], rows: list[str], caption: str | None = None, sortable: bool = False) -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "\n".join(f"<tr>{r}</tr>" for r in rows)
    cap = f"<caption>{caption}</caption>" if caption else ""
    table = '<table class="sortable">' if sortable else "<table>"
    return f'<div class="wide">{table}{cap}\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table></div>'


def _main_table(view: TaskView, intervals: dict[str, Any]) -> str:
    columns = view.columns
    best = {c.key: best_methods(view.rows, c) for c in columns}
    families = int(view.has_families)  # 1: a Family column leads the table
    header = ["Family"] * families + ["Method", "n"] + [_e(headline_label(view) if c.key == "headline" else c.label)
                                                       for c in columns]
    ci_at = 3 + families  # the verdict's interval goes beside the headline it qualifies
    if intervals:
        header.insert(ci_at, "95 % CI")
    rows = []
    for row in view.rows:
        cells = [_cell(_e(row.family or "—"))] * families + [_cell(_e(method_label(row))),
                                                         _cell(f"{row.headline.n}/{row.cells}", "num", row.headline.n)]
        for column in columns:
            text = display_value(row, column)
            value = row.value(column.key)
            cells.append(_cell(_e(text), "num best" if row.method in best[column.key] else "num",
                               _MISSING if value is None else value))
        if intervals:
            interval = intervals.get(row.method)
            low = interval[0] if isinstance(interval, (list, tuple)) and interval else None
            cells.insert(ci_at, _cell(_e(format_interval(interval)), "num", _MISSING if to_number(low) is None else low))
        rows.append("".join(cells))
    return _table(header, rows, sortable=True)


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
        parts.append(_table(["Method", _e(parameter), "Mean val loss", "Seeds ok", ""], rows, sortable=True))
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


def _learned(view: TaskView) -> list[str]:
    if not view.learned_prompts:
        return []
    rows = [_cell(_e(p.method)) + _cell(_e(p.seed), "num") + _cell(_e(p.tokens), "num") + _cell(_e(p.text), "text")
            for p in view.learned_prompts]
    return ["<h3>Learned prompts</h3>",
            "<p>The tokens a method trained and put in front of every input above, decoded to text.</p>",
            _table(["Method", "Seed", "Tokens", "Prompt"], rows)]


def _task(view: TaskView, index: int, plots: list[Plot], intervals: dict[str, Any]) -> list[str]:
    direction = "higher" if view.higher_is_better else "lower"
    parts = [f'<h2 id="task-{index}">Task: {_e(view.name)}</h2>',
             f"<p>Kind: {_e(view.kind or '—')}. Headline metric: <strong>{_e(view.headline_metric)}</strong> "
             f"({direction} is better). {_e(order_sentence(view))}</p>"]
    if view.rows:
        parts.append(_main_table(view, intervals))
        parts.append('<p class="note">Highlighted: the best value in a column (ties all marked; none when all values '
                     "are equal). Trainable parameters, trainable %, train time and saved size compare only methods "
                     "that train. n = seeds with a headline value / cells run. The headline is the mean over seeds, "
                     "± the sample standard deviation where a method has two or more seeds"
                     + (" and its paired-bootstrap 95 % CI from the verdict" if intervals else "")
                     + ". Other quality metrics are means over seeds. Click a column header to sort."
                     + (f" {_e(note)}" if (note := sharing_note(view)) else "") + "</p>")
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
    parts += _learned(view)
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


def _verdicts(verdicts: list[dict[str, Any]]) -> list[str]:
    parts = ['<section id="verdict"><h2>Verdict</h2>']
    for verdict in verdicts:
        parts.append(f"<h3>{_e(verdict['task'])}</h3>")
        parts.append("<ul>" + "".join(f"<li>{_e(s)}</li>" for s in verdict["summary"]) + "</ul>")
        if verdict["computed"]:
            rows = ["".join(_cell(_e(c), "" if i in (0, 5) else "num") for i, c in enumerate(row))
                    for row in verdict_rows(verdict)]
            parts.append(_table([_e(h) for h in VERDICT_HEADER], rows, sortable=True))
            parts.append(f'<p class="note">Paired bootstrap over {verdict["examples"]} shared test examples (and seeds), '
                         f'{verdict["resamples"]} resamples, seed {verdict["bootstrap_seed"]}; see docs/measurements.md.</p>')
    return parts + ["</section>"]


def render_html(data: RunDocument | dict[str, Any], views: list[TaskView] | None = None,
                plots: dict[str, list[Plot]] | None = None) -> str:
    """The whole report as one HTML page that opens offline; plots are drawn unless passed in."""
    data = as_document(data)
    views = build_tasks(data) if views is None else views
    plots = render_plots(data, views) if plots is None else plots
    verdicts = verdicts_of(data)
    run = data.run
    seeds = ", ".join(map(str, run.seeds or [])) or "—"
    toc = "".join(f'<li><a href="#task-{i}">{_e(v.name)}</a></li>' for i, v in enumerate(views))
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>tbench report: {_e(run.model or '')}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
        "<h1>tbench report</h1>",
        *_verdicts(verdicts),
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
        parts += _task(view, index, plots.get(view.name, []), headline_intervals(verdicts, view.name))
    parts += _failures(data)
    parts += _how_measured(data)
    parts += [f"<script>{SORT_SCRIPT}</script>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"
