"""The live terminal view of a run: which cell, its phase and step, loss, elapsed and estimated time."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.text import Text

from tuning_bench.cli.console import stderr, warn
from tuning_bench.run.executor import CellJob
from tuning_bench.run.runner import Plan, RunView

_STATUS_STYLE = {"ok": "green", "failed": "red", "not_applicable": "yellow"}


class CountColumn(ProgressColumn):
    """"12/80" where the phase has a known total (training steps, test examples); nothing where it has
    none (loading a model), rather than rich's "0/?"."""

    def render(self, task: Task) -> Text:
        if task.total is None:
            return Text("")
        return MofNCompleteColumn().render(task)


class LiveView(RunView):
    """Two progress bars (cells, and steps of the current cell) and a line per finished cell."""

    def __init__(self) -> None:
        self.cells = Progress(TextColumn("[bold]cells"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                              TextColumn("eta"), TimeRemainingColumn(), console=stderr)
        self.steps = Progress(TextColumn("{task.description}"), BarColumn(), CountColumn(),
                              TextColumn("{task.fields[loss]}"), TimeElapsedColumn(), TextColumn("eta"),
                              TimeRemainingColumn(), console=stderr)
        self.live: Live | None = None
        self.cells_task = None
        self.step_task = None
        self.cell_started = 0.0

    def prepare(self, plan: Plan, todo: list[CellJob], done: list[CellJob]) -> None:
        if done:
            stderr.print(escape(f"{len(done)} of {len(plan.jobs)} cells already finished in {plan.out_dir} (skipped; --force re-runs them)"))
        if not todo:
            return
        if plan.precision_choice and plan.precision_choice.warning:
            warn(escape(plan.precision_choice.warning))
        stderr.print(f"running {len(todo)} cells on {plan.jobs[0].spec.device} ({plan.jobs[0].spec.precision}), "
                     f"{plan.settings.steps} steps each, results in {plan.out_dir}")
        self.cells_task = self.cells.add_task("cells", total=len(todo))
        self.live = Live(Group(self.cells, self.steps), console=stderr, refresh_per_second=4, transient=True)
        self.live.start()

    def start(self, job: CellJob, index: int, total: int) -> None:
        self.cell_started = time.perf_counter()
        if self.step_task is not None:
            self.steps.remove_task(self.step_task)
        self.step_task = self.steps.add_task(f"{escape(job.spec.label)}: starting", total=None, loss="")

    def event(self, job: CellJob, event: dict[str, Any]) -> None:
        if self.step_task is None:
            return
        if event.get("event") == "phase":
            # A new bar per phase: rich cannot set a total back to unknown, and a phase without one
            # (loading, the guard) must not show the previous phase's count.
            self.steps.remove_task(self.step_task)
            self.step_task = self.steps.add_task(f"{escape(job.spec.label)}: {escape(str(event['phase']))}",
                                                 total=event.get("total"), loss="")
        elif event.get("event") == "warning" and self.live:
            self.live.console.print(f"[yellow]warning:[/] {escape(job.spec.label)}: {escape(event['message'])}", highlight=False)
        elif event.get("event") == "progress":  # evaluation: more test examples answered
            self.steps.advance(self.step_task, event.get("advance", 0))
        elif event.get("event") == "step":
            self.steps.update(self.step_task, completed=event["step"], total=event["total"],
                              loss=f"loss {event['loss']:.3f}")

    def finish(self, job: CellJob, record: dict[str, Any]) -> None:
        status = record.get("status", "failed")
        headline = record.get("headline") or {}
        value = headline.get("value")
        detail = f"{headline.get('metric')} {value:.4g}" if isinstance(value, (int, float)) else (record.get("error") or "")
        seconds = time.perf_counter() - self.cell_started
        message = (f"[{_STATUS_STYLE.get(status, 'red')}]{status:>14}[/] {escape(job.spec.label)}  {escape(detail)}"
                   f"  ({seconds:.0f} s)")
        if self.live:
            self.live.console.print(message, highlight=False)
        if self.cells_task is not None:
            self.cells.advance(self.cells_task)

    def close(self) -> None:
        if self.live:
            self.live.stop()
            self.live = None
