"""Schema migrations, URL resolution and connection errors of the registry (SQLite + PostgreSQL)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Engine, Integer, MetaData, inspect, text

from forex_diffusion.config.sssd_config import load_sssd_config
from forex_diffusion.errors import RegistryError
from forex_diffusion.registry import Registry
from forex_diffusion.registry.db import (
    ENV_DB_URL,
    create_registry_engine,
    current_revision,
    downgrade,
    ensure_schema,
    head_revision,
    mask_url,
    resolve_db_url,
    upgrade,
)
from forex_diffusion.registry.models import Base

TABLES = {
    "sssd_models",
    "sssd_checkpoints",
    "sssd_training_runs",
    "sssd_inference_logs",
    "sssd_performance_metrics",
    "sssd_model_cards",
}


@pytest.fixture
def engine(registry_url: str) -> Iterator[Engine]:
    eng = create_registry_engine(registry_url)
    yield eng
    eng.dispose()


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def _schema_diff(engine: Engine, metadata: MetaData) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def test_upgrade_from_empty_to_head_and_back(engine: Engine) -> None:
    assert current_revision(engine) is None and _tables(engine) == set()
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert _tables(engine) == TABLES
    downgrade(engine, "base")
    assert current_revision(engine) is None and _tables(engine) == set()
    upgrade(engine, "head")  # and up again: the downgrade left nothing behind
    assert _tables(engine) == TABLES


def test_models_and_migrations_agree(engine: Engine) -> None:
    upgrade(engine)
    assert _schema_diff(engine, Base.metadata) == []
    # the comparison has teeth: a column the migrations do not create is reported
    extended = MetaData()
    for table in Base.metadata.sorted_tables:
        copy = table.to_metadata(extended)
        if table.name == "sssd_models":
            copy.append_column(Column("extra", Integer, nullable=True))
    diffs = _schema_diff(engine, extended)
    assert len(diffs) == 1 and "extra" in repr(diffs[0])


def test_sqlite_runs_in_wal_with_foreign_keys(tmp_path: Path) -> None:
    engine = create_registry_engine(f"sqlite:///{tmp_path / 'sub' / 'dir' / 'reg.db'}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert (tmp_path / "sub" / "dir" / "reg.db").exists()
    finally:
        engine.dispose()


def test_first_use_upgrades_and_is_idempotent(registry_url: str) -> None:
    with Registry(registry_url) as reg:
        assert current_revision(reg.engine) == head_revision()
    with Registry(registry_url, auto_upgrade=False) as reg:  # already at head
        assert reg.list_models() == []
    engine = create_registry_engine(registry_url)
    try:
        assert ensure_schema(engine) == head_revision()
    finally:
        engine.dispose()


def test_no_auto_upgrade_on_an_empty_database_asks_for_db_upgrade(registry_url: str) -> None:
    with pytest.raises(RegistryError, match="run `forex-diffusion db upgrade`"):
        Registry(registry_url, auto_upgrade=False)


def test_schema_from_a_newer_version_is_refused(engine: Engine) -> None:
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(RegistryError, match=r"revision '9999'.*Upgrade forex_diffusion"):
        ensure_schema(engine)


def test_unknown_target_revision_is_a_clear_error(engine: Engine) -> None:
    with pytest.raises(RegistryError, match=r"Known revisions: 0001"):
        upgrade(engine, "nonexistent")


# --------------------------------------------------------------------------- URL handling


def test_url_precedence(monkeypatch: pytest.MonkeyPatch, default_config_path: Path) -> None:
    config = load_sssd_config(default_config_path, overrides=["paths.artifacts_dir=/srv/art"])
    monkeypatch.delenv(ENV_DB_URL, raising=False)
    assert resolve_db_url(None, config) == "sqlite:////srv/art/registry.db"
    assert resolve_db_url(None, None).endswith("/artifacts/registry.db")
    with_url = config.with_overrides(["paths.db_url=sqlite:////cfg.db"])
    assert resolve_db_url(None, with_url) == "sqlite:////cfg.db"
    monkeypatch.setenv(ENV_DB_URL, "sqlite:////env.db")
    assert resolve_db_url(None, with_url) == "sqlite:////env.db"
    assert resolve_db_url("sqlite:////arg.db", with_url) == "sqlite:////arg.db"


def test_registry_uses_the_config_artifacts_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, default_config_path: Path
) -> None:
    monkeypatch.delenv(ENV_DB_URL, raising=False)
    config = load_sssd_config(default_config_path, overrides=[f"paths.artifacts_dir={tmp_path}"])
    with Registry(config=config) as reg:
        reg.record_metrics(None, "rw", "EURUSD", 5, "2023-01-01", "2023-01-02", {}, 1)
    assert (tmp_path / "registry.db").is_file()


def test_mask_url_hides_the_password() -> None:
    masked = mask_url("postgresql+psycopg://trader:s3cr%40t@db.example:5432/fx")
    assert masked == "postgresql+psycopg://trader:***@db.example:5432/fx"
    assert mask_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.postgres
def test_unreachable_postgres_names_the_url_without_password() -> None:
    url = f"postgresql+psycopg://trader:TopSecret42@127.0.0.1:{_closed_port()}/fx"
    with pytest.raises(RegistryError) as err:
        Registry(url)
    message = str(err.value)
    assert "TopSecret42" not in message
    assert "postgresql+psycopg://trader:***@127.0.0.1:" in message
    assert message.startswith("cannot connect to registry database") and "paths.db_url" in message


@pytest.mark.postgres
def test_wrong_database_on_a_live_server_is_a_clear_error(postgres_server: object) -> None:
    url = postgres_server.url("no_such_db", password="pw123")  # type: ignore[attr-defined]
    with pytest.raises(RegistryError) as err:
        Registry(url)
    assert "no_such_db" in str(err.value) and "pw123" not in str(err.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "not a valid SQLAlchemy URL"),
        ("nosuchdb://u:pw@host/db", "no usable driver"),
        ("sqlite:////proc/forbidden/registry.db", "cannot create folder"),
    ],
)
def test_bad_urls(url: str, expected: str) -> None:
    with pytest.raises(RegistryError, match=expected) as err:
        Registry(url)
    assert ":pw@" not in str(err.value)
