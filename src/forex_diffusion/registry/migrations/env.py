"""Alembic environment of the registry, run by ``forex_diffusion.registry.db`` (no alembic.ini).

Online: the caller hands an open Connection in ``config.attributes["connection"]``. All pending
migrations run in ONE transaction (SQLite included: its engine begins with BEGIN IMMEDIATE), and
on PostgreSQL a transaction-scoped advisory lock is taken first, so two processes upgrading the
same empty database at once upgrade it exactly once.
Offline (``--sql``): SQL is written for the URL in ``sqlalchemy.url``.

Adding a migration (developers): change ``models.py``, upgrade a scratch SQLite database to head,
then ``alembic.command.revision(alembic_config(connection), "message", autogenerate=True)``
writes a draft into ``versions/``; review it (SQLite needs batch operations, which env.py
enables) and keep ``tests/test_registry_migrations.py`` green on both backends.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from forex_diffusion.registry.db import MIGRATION_LOCK_KEY, create_registry_engine
from forex_diffusion.registry.models import Base

target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        transactional_ddl=True,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def _migrate(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("registry migrations need a connection or sqlalchemy.url")
    engine = create_registry_engine(url)
    try:
        with engine.connect() as own_connection:
            _migrate(own_connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
