"""Progress of long work: a live spinner or bar on a terminal, one summary line per stage
otherwise.

Both go to stderr, so that stdout keeps only a command's result. :func:`stage` times a block of
unknown length; :func:`steps` (a :class:`forex_diffusion.steps.Steps`) counts a stage's steps.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from forex_diffusion.steps import Advance


@contextmanager
def stage(name: str, enabled: bool | None = None) -> Iterator[None]:
    """Run the block as the stage ``name``: a rich spinner with the elapsed time while it runs
    when stderr is a terminal (or ``enabled``), then one line ``name: done in 1.2 s``; a failed
    stage writes ``name: failed after 1.2 s``."""
    from rich.console import Console

    console = Console(stderr=True)
    live = console.is_terminal if enabled is None else enabled
    started = time.perf_counter()
    try:
        if live:
            with console.status(f"{name} ..."):
                yield
        else:
            yield
    except BaseException:
        print(f"{name}: failed after {time.perf_counter() - started:.1f} s", file=sys.stderr)
        raise
    print(f"{name}: done in {time.perf_counter() - started:.1f} s", file=sys.stderr)


def steps_line(
    name: str, done: int, total: int, seconds: float, note: str | None, failed: bool = False
) -> str:
    """The summary line of a counted stage: ``name: 4/4 done in 2.5 s; note`` (``failed after``
    when it raised)."""
    outcome = (
        f"failed after {seconds:.1f} s ({done}/{total} done)"
        if failed
        else (f"{done}/{total} done in {seconds:.1f} s")
    )
    return f"{name}: {outcome}" + (f"; {note}" if note else "")


@contextmanager
def steps(name: str, total: int, enabled: bool | None = None) -> Iterator[Advance]:
    """The stage ``name`` of ``total`` steps (a :class:`forex_diffusion.steps.Steps`): a rich
    progress bar (steps done of total, elapsed time, the latest note) while it runs when stderr
    is a terminal (or ``enabled``), then the line of :func:`steps_line` on stderr."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    console = Console(stderr=True)
    live = console.is_terminal if enabled is None else enabled
    started = time.perf_counter()
    done = 0
    last_note: str | None = None
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
        console=console,
        transient=True,
        disable=not live,
    )
    task = bar.add_task(name, total=total, note="")

    def advance(label: str, note: str | None = None) -> None:
        nonlocal done, last_note
        done += 1
        last_note = note if note is not None else last_note
        bar.update(task, advance=1, note=last_note or label)

    try:
        with bar:
            yield advance
    except BaseException:
        seconds = time.perf_counter() - started
        print(steps_line(name, done, total, seconds, last_note, failed=True), file=sys.stderr)
        raise
    print(steps_line(name, done, total, time.perf_counter() - started, last_note), file=sys.stderr)
