"""The progress hook of long work made of counted steps (baselines tuned, trials run).

Library code takes a :class:`Steps` and reports through it: ``with steps("tuning 4 baselines",
4) as advance: ... advance("garch_t", note)``; the command line passes one that draws a bar or
writes a summary line (``forex_diffusion.cli.progress.steps``), and :func:`silent_steps`, the
default, reports nowhere. A leaf module: it imports nothing from the package.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol


class Advance(Protocol):
    """Called once per finished step: its ``label`` and an optional ``note`` on the work so
    far (the latest note is shown, e.g. the best score yet)."""

    def __call__(self, label: str, note: str | None = None) -> None: ...


class Steps(Protocol):
    """Opens the stage ``name`` of ``total`` steps; the context yields its :class:`Advance`."""

    def __call__(self, name: str, total: int) -> AbstractContextManager[Advance]: ...


def _ignore(label: str, note: str | None = None) -> None:
    return None


@contextmanager
def silent_steps(name: str, total: int) -> Iterator[Advance]:
    """A :class:`Steps` that reports nowhere."""
    yield _ignore
