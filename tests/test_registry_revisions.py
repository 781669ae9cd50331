"""The registry's schema revision without Alembic: the head parsed from the shipped migration
files, the stored revision read with a plain query, and a registry at head opened without
importing Alembic (migrations still run where the database is behind)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from forex_diffusion.errors import RegistryError
from forex_diffusion.registry.db import (
    alembic_config,
    create_registry_engine,
    current_revision,
    downgrade,
    ensure_schema,
    upgrade,
)
from forex_diffusion.registry.revisions import head_revision, known_revisions, revision_graph


@pytest.fixture
def engine(registry_url: str) -> Iterator[Engine]:
    eng = create_registry_engine(registry_url)
    yield eng
    eng.dispose()


def _alembic_current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_shipped_revisions_agree_with_alembic() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    graph = {rev.revision: tuple(rev._normalized_down_revisions) for rev in script.walk_revisions()}
    assert revision_graph() == graph
    assert head_revision() == script.get_current_head()
    assert known_revisions() == frozenset(graph)


def test_current_revision_is_alembics(engine: Engine) -> None:
    assert current_revision(engine) is None and _alembic_current(engine) is None
    upgrade(engine)
    assert current_revision(engine) == _alembic_current(engine) == head_revision()
    assert ensure_schema(engine) == head_revision()
    downgrade(engine, "base")
    assert current_revision(engine) is None and _alembic_current(engine) is None


def test_several_stored_revisions_are_refused(tmp_path: Path) -> None:
    eng = create_registry_engine(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        upgrade(eng)
        with eng.begin() as conn:
            conn.execute(text("INSERT INTO alembic_version (version_num) VALUES ('zzzz')"))
        with pytest.raises(RegistryError, match="several schema revisions"):
            current_revision(eng)
    finally:
        eng.dispose()


_OPEN = """
import json, sys
from forex_diffusion.registry import Registry
with Registry(sys.argv[1]) as reg:
    reg.list_models()
from forex_diffusion.registry.db import current_revision, create_registry_engine
eng = create_registry_engine(sys.argv[1])
print(json.dumps({"alembic": "alembic" in sys.modules, "revision": current_revision(eng)}))
"""


def _open_in_a_fresh_process(url: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", _OPEN, url], capture_output=True, text=True, check=True, env=env
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_a_registry_at_head_opens_without_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    first = _open_in_a_fresh_process(url)  # an empty database: migrated by Alembic
    assert first == {"alembic": True, "revision": head_revision()}
    again = _open_in_a_fresh_process(url)  # at head: a plain query, no Alembic
    assert again == {"alembic": False, "revision": head_revision()}
