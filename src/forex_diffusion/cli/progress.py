"""Progress of long work: a live spinner on a terminal, one summary line per stage otherwise.

Both go to stderr, so that stdout keeps only a command's result.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


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
