"""Progress on stderr (stdout stays clean for tables): a live bar in a terminal; elsewhere (a log file, CI, a job in
the background) a plain line per task at most once a minute, so a long job shows it is alive and how far it is."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import contextmanager
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TaskID, TextColumn,
                           TimeRemainingColumn)

T = TypeVar("T")
stderr = Console(stderr=True)
PLAIN_EVERY_S = 60.0  # away from a terminal: seconds between a task's progress lines


def bar_columns() -> tuple[ProgressColumn, ...]:
    """Description, bar, done/total, time left: fresh ones for each bar (rich columns cache their renders per task)."""
    return TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()


class LoggedProgress(Progress):
    """A rich Progress on stderr, transient; where stderr is no terminal its live bar is off and each task prints
    ``description: done/total, N min left  status`` when ``every_s`` have passed since its last line."""

    def __init__(self, *columns: Any, disable: bool = False, every_s: float = PLAIN_EVERY_S,
                 get_time: Callable[[], float] | None = None) -> None:
        self.plain = not disable and not stderr.is_terminal
        super().__init__(*columns, console=stderr, transient=True, disable=disable or self.plain, get_time=get_time)
        self.every_s = every_s
        self._last_line: dict[TaskID, float] = {}

    def add_task(self, description: str, *args: Any, **kwargs: Any) -> TaskID:
        task = super().add_task(description, *args, **kwargs)
        self._last_line[task] = self.get_time()
        return task

    def update(self, task_id: TaskID, **kwargs: Any) -> None:
        super().update(task_id, **kwargs)
        self._plain_line(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._plain_line(task_id)

    def _plain_line(self, task_id: TaskID) -> None:
        now = self.get_time()
        if not self.plain or now - self._last_line[task_id] < self.every_s:
            return
        self._last_line[task_id] = now
        task = self._tasks[task_id]
        total = f"/{task.total:.0f}" if task.total is not None else ""
        left = task.time_remaining
        status = task.fields.get("status", "")
        stderr.print(f"{task.description}: {task.completed:.0f}{total}"
                     + (f", {left / 60:.1f} min left" if left is not None else "") + (f"  {status}" if status else ""),
                     highlight=False, markup=False)


def progress_track(items: Iterable[T], description: str) -> Iterator[T]:
    """``items`` as they come, counted (of ``len(items)`` where it has one: a video's frames have none)."""
    total = len(items) if isinstance(items, Sized) else None
    with LoggedProgress(*bar_columns()) as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)


@contextmanager
def progress_steps(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """Yields ``advance_to(done)`` for loops that live inside a library function."""
    with LoggedProgress(*bar_columns()) as progress:
        task = progress.add_task(description, total=total)
        yield lambda done: progress.update(task, completed=done)
