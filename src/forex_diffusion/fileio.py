"""Atomic file writes: readers see the old file or the new one, never a partial one."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path


def stage_write(path: str | Path, write: Callable[[Path], object], fsync: bool = False) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path`` and return ``tmp``.

    The caller moves ``tmp`` into place with ``os.replace`` (or removes it). The temporary
    name is unique per process and call (``.<name>.<pid>.<hex>.tmp``), so concurrent writers
    never share one; it is removed when ``write`` fails. ``fsync`` flushes the file to disk.
    Errors of ``write`` propagate unchanged.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        if fsync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def atomic_write(path: str | Path, write: Callable[[Path], object], fsync: bool = False) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path``, then move it into place.

    See :func:`stage_write` for the temporary file; it is removed whatever happens.
    """
    path = Path(path)
    tmp = stage_write(path, write, fsync)
    try:
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
