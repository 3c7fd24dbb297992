"""Progress bars on stderr (stdout stays clean for tables), hidden when stderr is not a terminal."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn, track

T = TypeVar("T")
stderr = Console(stderr=True)


def progress_track(items: Iterable[T], description: str) -> Iterator[T]:
    yield from track(items, description=description, console=stderr, transient=True, disable=not stderr.is_terminal)


@contextmanager
def progress_steps(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """Yields ``advance_to(done)`` for loops that live inside a library function."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=stderr, transient=True, disable=not stderr.is_terminal) as progress:
        task = progress.add_task(description, total=total)
        yield lambda done: progress.update(task, completed=done)
