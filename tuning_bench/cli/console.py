"""Shared terminal output: one stderr console for progress and warnings, stdout for results."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

stderr = Console(stderr=True, soft_wrap=True)  # messages stay one line, however narrow the terminal
stdout = Console()


@contextmanager
def download_bar(description: str) -> Iterator[Callable[[int, int | None], None]]:
    """A progress bar for a download; yields a ``progress(done_bytes, total_bytes)`` callback."""
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=stderr, transient=False) as progress:
        task_id = progress.add_task(description, total=None)

        def update(done: int, total: int | None) -> None:
            progress.update(task_id, completed=done, total=total)

        yield update


def warn(message: str) -> None:
    """Print a warning; ``message`` is plain text (names, paths, hints with [brackets]), never markup."""
    stderr.print(f"[yellow]warning:[/] {escape(message)}", highlight=False)
