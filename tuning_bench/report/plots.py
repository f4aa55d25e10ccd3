"""Per-task PNG plots: loss curves, and quality against trainable parameters, against peak memory and against
forgetting (gain vs retention).

Figures are drawn on matplotlib's Agg canvas directly (no pyplot), so nothing global such as the
user's backend is touched, and under matplotlib's default style, so a user's matplotlibrc cannot
change the bytes. Size, dpi and metadata are fixed: the same record gives the same PNG bytes.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

from tuning_bench.report.tables import TaskView, format_count, method_names, pareto_front
from tuning_bench.run.records import RunDocument

FIGURE_SIZE = (7.0, 4.2)
DPI = 100
# Rings mark the front's points, so a front of one point (a cheapest method that is also best) still shows.
FRONT_STYLE = {"color": "0.35", "linestyle": "--", "linewidth": 1.2, "marker": "o", "markersize": 13,
               "markerfacecolor": "none", "zorder": 2}


@dataclass(frozen=True)
class Plot:
    """One rendered plot: its file name under plots/, a caption, and the PNG bytes."""

    filename: str
    caption: str
    png: bytes


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "task"


def plot_slugs(views: list[TaskView]) -> dict[str, str]:
    """A file-name-safe, unique stem per task."""
    slugs: dict[str, str] = {}
    for index, view in enumerate(views):
        slug = _slug(view.name)
        slugs[view.name] = slug if slug not in slugs.values() else f"{slug}-{index + 1}"
    return slugs


def _colors(data: RunDocument | dict[str, Any]) -> dict[str, Any]:
    # One colour per method for the whole report, from the run's method order, so plots agree.
    import matplotlib

    cycle = matplotlib.colormaps["tab10"]
    return {name: cycle(index % 10) for index, name in enumerate(method_names(data))}


def _png(figure: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _figure() -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGURE_SIZE, dpi=DPI, layout="constrained")
    return figure, figure.add_subplot()


def _empty(axes: Any, message: str) -> None:
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes, color="0.4")
    axes.set_xticks([])
    axes.set_yticks([])


def loss_plot(view: TaskView, colors: dict[str, Any]) -> Any:
    """Mean train loss per step (lines) and mean validation loss (markers on dashed lines) per method."""
    figure, axes = _figure()
    axes.set_title(f"{view.name}: loss during training (mean over seeds)")
    if not view.curves:
        _empty(axes, "no method trained on this task")
        return figure
    from matplotlib.lines import Line2D

    for curve in view.curves:
        color = colors.get(curve.method, "black")
        if curve.train_steps:
            axes.plot(curve.train_steps, curve.train_loss, color=color, linewidth=1.5, label=curve.method)
        if curve.val_steps:
            axes.plot(curve.val_steps, curve.val_loss, color=color, linestyle=":", marker="o", markersize=4,
                      label=None if curve.train_steps else curve.method)
    handles, labels = axes.get_legend_handles_labels()
    # One entry per method (its colour) plus a key for the two line styles keeps the legend short.
    handles += [Line2D([], [], color="0.3", linewidth=1.5),
                Line2D([], [], color="0.3", linestyle=":", marker="o", markersize=4)]
    labels += ["train loss", "validation loss"]
    axes.set_xlabel("training step")
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
    axes.set_ylabel("loss")
    axes.grid(True, alpha=0.3)
    axes.legend(handles, labels, fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return figure


def _scatter(view: TaskView, colors: dict[str, Any], points: list[tuple[str, float, float, bool]], title: str,
             xlabel: str, floor_note: str | None = None, drawn_at: dict[str, float] | None = None,
             hollow_label: str | None = None, tick_format: Any = None, log_scale: bool | None = None,
             scale: float = 1.0) -> Any:
    """Quality against a cost, with the Pareto front; ``points`` are (method, cost, quality, hollow).

    Costs are drawn divided by ``scale`` (bytes in GiB). ``log_scale`` None picks a log axis only when
    the costs span more than a factor of ten.
    """
    figure, axes = _figure()
    arrow = "↑" if view.higher_is_better else "↓"
    axes.set_title(title)
    axes.set_ylabel(f"{view.headline_metric} ({arrow} better)")
    if not points:
        _empty(axes, "no finished method has both figures")
        return figure
    drawn_at = drawn_at or {}
    x = [drawn_at.get(method, cost) / scale for method, cost, _, _ in points]
    # Methods are named in a legend beside the axes, not by text at the points: labels of close points
    # (two methods at nearly the same memory and quality) printed on top of each other.
    for (method, _, quality, hollow), position in zip(points, x):
        color = colors.get(method, "black")
        axes.scatter([position], [quality], s=50, zorder=3, color="white" if hollow else color,
                     edgecolors=color, linewidths=1.5, label=method)
    front = pareto_front([(cost, quality) for _, cost, quality, _ in points], view.higher_is_better)
    axes.plot([x[i] for i in front], [points[i][2] for i in front], drawstyle="steps-post",
              label="Pareto front\n(ringed: no method is\ncheaper and better)", **FRONT_STYLE)
    positive = [value for value in x if value > 0]
    if log_scale is None:
        log_scale = bool(positive) and max(positive) / min(positive) > 10
    if log_scale:
        axes.set_xscale("log")
        xlabel += " (log)"
    axes.set_xlabel(xlabel)
    if tick_format is not None:
        from matplotlib.ticker import FuncFormatter, NullFormatter

        axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: tick_format(value)))
        axes.xaxis.set_minor_formatter(NullFormatter())
    if not log_scale:
        from matplotlib.ticker import MaxNLocator

        # round values in the axis unit: 1, 2, 2.5 or 5 times a power of ten (0.25, 0.5, 1.0 GiB)
        axes.xaxis.set_major_locator(MaxNLocator(5, steps=[1, 2, 2.5, 5, 10]))
    axes.margins(x=0.15, y=0.15)
    axes.grid(True, alpha=0.3, which="both")
    notes = [n for n in (floor_note, hollow_label) if n]
    if notes:
        axes.text(0.01, 0.01, "\n".join(notes), transform=axes.transAxes, fontsize="x-small", color="0.3",
                  va="bottom")
    axes.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return figure


def params_plot(view: TaskView, colors: dict[str, Any]) -> Any:
    """Headline quality against trainable parameters on a log axis; 0 is drawn at a floor below the rest."""
    points = [(r.method, r.values["trainable_params"], r.headline.mean, False) for r in view.rows
              if r.headline.mean is not None and r.values["trainable_params"] is not None]
    positive = [cost for _, cost, _, _ in points if cost > 0]
    # A log axis has no 0, yet the baselines' 0 is the point of the comparison: draw them a decade
    # below the smallest trained method and say so on the plot. The front still uses the true 0.
    floor = min(positive) / 10 if positive else 1.0
    zero = {method: floor for method, cost, _, _ in points if cost <= 0}
    note = f"0 trainable parameters is drawn at {format_count(floor)} (log axis)" if zero else None
    return _scatter(view, colors, points, f"{view.name}: quality vs trainable parameters",
                    "trainable parameters", floor_note=note, drawn_at=zero,
                    tick_format=lambda value: format_count(value) if value >= 1 else "", log_scale=True)


def memory_plot(view: TaskView, colors: dict[str, Any]) -> Any:
    """Headline quality against peak training memory; methods that do not train use their eval peak."""
    points = [(row.method, row.peak_memory, row.headline.mean, not row.trains or row.values["train_peak_bytes"] is None)
              for row in view.rows if row.headline.mean is not None and row.peak_memory]
    hollow = "hollow marker: no training, evaluation peak shown" if any(p[3] for p in points) else None
    # Ticks at round values of one unit (GiB, or MiB for a small model), the unit in the axis label;
    # a linear axis: peaks of one model rarely span a factor of ten, and round steps read best.
    unit, scale = ("GiB", 1024 ** 3) if max((p[1] for p in points), default=0) >= 1024 ** 3 else ("MiB", 1024 ** 2)
    return _scatter(view, colors, points, f"{view.name}: quality vs peak memory", f"peak memory ({unit})",
                    hollow_label=hollow, tick_format=lambda value: f"{value:g}", log_scale=False, scale=scale)


def retention_plot(view: TaskView, colors: dict[str, Any]) -> Any:
    """Headline quality (the gain) against forgetting (the rise of the probe loss, docs/measurements.md,
    Retention); methods that do not train change nothing and are drawn hollow at 0."""
    points = [(row.method, 0.0 if not row.trains else row.values.get("probe_loss_change"), row.headline.mean,
               not row.trains) for row in view.rows]
    points = [p for p in points if p[1] is not None and p[2] is not None]
    if all(hollow for *_, hollow in points):  # no trained method has the figure (an encoder, an older record)
        points = []
    hollow = "hollow marker: no training, nothing changed (drawn at 0)" if any(p[3] for p in points) else None
    return _scatter(view, colors, points, f"{view.name}: gain vs retention",
                    "probe loss change after training (← retains more)", hollow_label=hollow, log_scale=False)


CAPTIONS = {
    "loss": "Loss curves: train loss per step (solid) and validation loss (dotted), mean over seeds.",
    "quality-vs-params": "Headline quality vs trainable parameters; the dashed line and rings mark the Pareto front.",
    "quality-vs-memory": "Headline quality vs peak memory (training peak; evaluation peak for methods that do not "
                         "train); the dashed line and rings mark the Pareto front.",
    "gain-vs-retention": "Headline quality vs forgetting: the rise of the loss on a neutral probe set after training "
                         "(left retains more); the dashed line and rings mark the Pareto front.",
}
DRAW = {"loss": loss_plot, "quality-vs-params": params_plot, "quality-vs-memory": memory_plot,
        "gain-vs-retention": retention_plot}


def plot_files(views: list[TaskView]) -> dict[str, list[tuple[str, str]]]:
    """Per task name, the (file name, caption) of each of its plots, without drawing anything."""
    slugs = plot_slugs(views)
    return {view.name: [(f"{slugs[view.name]}-{kind}.png", caption) for kind, caption in CAPTIONS.items()]
            for view in views}


def render_plots(data: RunDocument | dict[str, Any], views: list[TaskView]) -> dict[str, list[Plot]]:
    """Every plot of the report, per task name, rendered to PNG bytes."""
    import matplotlib

    colors = _colors(data)
    files = plot_files(views)
    plots: dict[str, list[Plot]] = {}
    defaults = {k: v for k, v in matplotlib.rcParamsDefault.items() if k != "backend"}
    with matplotlib.rc_context(defaults):
        for view in views:
            plots[view.name] = [Plot(name, caption, _png(DRAW[kind](view, colors)))
                                for kind, (name, caption) in zip(CAPTIONS, files[view.name])]
    return plots
