"""The schema revisions this package ships, read from the migration files without Alembic.

Each file in ``migrations/versions`` names its ``revision`` and ``down_revision`` (the Alembic
convention, read as literals); the head is the one revision no other revises. Opening a
registry that is already at head therefore costs no Alembic import (a test checks that these
agree with Alembic's own ``ScriptDirectory``).
"""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path

from forex_diffusion.errors import RegistryError

VERSIONS_DIR = Path(__file__).resolve().parent / "migrations" / "versions"
_ASSIGNMENT = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*(.+?)\s*$", re.MULTILINE)


def _literal(text: str, path: Path) -> tuple[str, ...]:
    """The revision(s) of an assignment's right-hand side: a string, None or a tuple."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise RegistryError(f"{path}: unreadable revision {text!r} ({exc})") from None
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


@lru_cache(maxsize=1)
def revision_graph() -> dict[str, tuple[str, ...]]:
    """Each shipped revision and the revisions it follows (``down_revision``)."""
    graph: dict[str, tuple[str, ...]] = {}
    for path in sorted(VERSIONS_DIR.glob("*.py")):
        found = dict(
            (m.group(1), m.group(2)) for m in _ASSIGNMENT.finditer(path.read_text("utf-8"))
        )
        if "revision" not in found:
            continue  # not a migration (the package's __init__.py)
        (revision,) = _literal(found["revision"], path)
        graph[revision] = _literal(found.get("down_revision", "None"), path)
    return graph


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest migration revision shipped with this package."""
    graph = revision_graph()
    followed = {down for downs in graph.values() for down in downs}
    heads = sorted(set(graph) - followed)
    if len(heads) != 1:
        raise RegistryError(
            f"the package's migrations in {VERSIONS_DIR} have {len(heads)} heads ({heads}); "
            "they must form one line"
        )
    return heads[0]


def known_revisions() -> frozenset[str]:
    """Every revision shipped with this package."""
    return frozenset(revision_graph())
