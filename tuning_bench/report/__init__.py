"""Reports: Markdown, self-contained HTML and plots built from results.json alone.

Data flows one way: ``tables.build_tasks`` aggregates the record once, and every output
(``markdown``, ``html``, ``plots``, the terminal tables in ``compare``) formats that. Nothing here
runs a model. The same record always gives byte-identical files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuning_bench.report.compare import compare_runs, terminal_tables, terminal_verdicts
from tuning_bench.report.html import render_html
from tuning_bench.report.markdown import render_markdown
from tuning_bench.report.plots import render_plots
from tuning_bench.report.tables import build_tasks, pareto_front
from tuning_bench.files import atomic_write_bytes, atomic_write_text

__all__ = ["write_reports", "render_markdown", "render_html", "terminal_tables", "terminal_verdicts", "compare_runs", "pareto_front"]


def write_reports(out_dir: Path, data: dict[str, Any]) -> list[Path]:
    """Write report.md, report.html and plots/*.png under ``out_dir``; return the paths written.

    The plots are drawn once: the PNG files and the images embedded in the HTML are the same bytes.
    """
    out_dir = Path(out_dir)
    views = build_tasks(data)
    plots = render_plots(data, views)
    written = []
    for task_plots in plots.values():
        for plot in task_plots:
            path = out_dir / "plots" / plot.filename
            atomic_write_bytes(path, plot.png)
            written.append(path)
    for name, text in (("report.md", render_markdown(data, views)), ("report.html", render_html(data, views, plots))):
        atomic_write_text(out_dir / name, text)
        written.append(out_dir / name)
    return written
