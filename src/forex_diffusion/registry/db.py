"""Registry database: URL resolution, engine set-up and schema migrations (Alembic, in code).

URL precedence (:mod:`forex_diffusion.settings`): an explicit ``url`` argument, then the
environment variable ``FOREX_DIFFUSION_DB_URL``, then config ``paths.db_url``, then the default
SQLite file ``<paths.artifacts_dir>/registry.db``.

SQLite engines run in WAL mode with foreign keys on, and every transaction starts with
``BEGIN IMMEDIATE`` so that concurrent writers queue on the busy timeout instead of failing
half-way (SQLite then also runs DDL transactionally, which makes migrations atomic).
PostgreSQL migrations take a transaction-scoped advisory lock, so concurrent first uses of an
empty database upgrade it exactly once.

Migrations live inside the package (``forex_diffusion/registry/migrations``); no alembic.ini is
needed. ``upgrade``/``downgrade`` drive Alembic programmatically (imported only then);
``current_revision`` and ``head_revision`` read the version table and the migration files
without it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from forex_diffusion.errors import RegistryError
from forex_diffusion.registry.revisions import head_revision as head_revision
from forex_diffusion.registry.revisions import known_revisions as known_revisions
from forex_diffusion.settings import ENV_DB_URL, Settings

if TYPE_CHECKING:  # the config module pulls in pandas; the registry needs only its paths
    from alembic.config import Config

    from forex_diffusion.config.sssd_config import SSSDConfig

MIGRATIONS_LOCATION = "forex_diffusion.registry:migrations"
VERSION_TABLE = "alembic_version"  # where Alembic keeps the revision a database is at
SQLITE_BUSY_TIMEOUT_MS = 30_000
POSTGRES_CONNECT_TIMEOUT_S = 10
# Arbitrary constant key of the PostgreSQL advisory lock that serialises migrations.
MIGRATION_LOCK_KEY = 0x46584446  # "FXDF"


def resolve_db_url(url: str | None = None, config: SSSDConfig | None = None) -> str:
    """The registry URL: ``url`` > env FOREX_DIFFUSION_DB_URL > ``paths.db_url`` > SQLite default
    (see :mod:`forex_diffusion.settings`)."""
    return Settings.from_flags(db_url=url).db_url_for(config)


def mask_url(url: str | URL) -> str:
    """The URL with its password replaced by ``***`` (safe for messages and logs)."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        text = str(url)
        # Not parseable: hide anything between "://user:" and "@".
        if "://" in text and "@" in text:
            scheme, rest = text.split("://", 1)
            creds, host = rest.rsplit("@", 1)
            user = creds.split(":", 1)[0]
            return f"{scheme}://{user}:***@{host}" if ":" in creds else text
        return text
    return parsed.render_as_string(hide_password=True)


def _scrub(message: str, url: str | URL) -> str:
    """Remove the URL's password from a driver message, should a driver ever echo it."""
    try:
        password = (make_url(url) if isinstance(url, str) else url).password
    except ArgumentError:
        return message
    if password:
        message = message.replace(str(password), "***")
    return message


def _driver_message(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).strip().splitlines() if line.strip()]
    return " ".join(lines[:3]) if lines else type(orig).__name__


_ADVICE = (
    "Check that the database server is running and reachable and that the URL is right "
    f"(config paths.db_url or env {ENV_DB_URL})."
)


def _reason(exc: BaseException, url: str | URL) -> str:
    return _scrub(_driver_message(exc), url).rstrip(" .?")


def db_error(exc: BaseException, url: str | URL, action: str) -> RegistryError:
    """A RegistryError naming the action, the masked URL, the driver's reason and what to do."""
    return RegistryError(
        f"registry database {mask_url(url)}: {action} failed: {_reason(exc, url)}. {_ADVICE}"
    )


def connect_error(exc: BaseException, url: str | URL) -> RegistryError:
    """A RegistryError for a database that cannot be reached (masked URL, reason, advice)."""
    return RegistryError(
        f"cannot connect to registry database {mask_url(url)}: {_reason(exc, url)}. {_ADVICE}"
    )


def sqlite_path(url: str | URL) -> Path | None:
    """The absolute file of a file-backed SQLite URL; None for other databases, in-memory
    SQLite or an unparseable URL."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or _is_sqlite_memory(parsed):
        return None
    return Path(str(parsed.database)).expanduser().absolute()


def _is_sqlite_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def _enter_wal(cursor: Any) -> None:
    """Switch the database to WAL, retrying while another connection holds the lock.

    SQLite answers ``database is locked`` at once, without calling the busy handler, when two
    connections switch a new database to WAL at the same moment; the retry gives the switch
    the same patience (``SQLITE_BUSY_TIMEOUT_MS``) as every other statement.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    pause_s = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause_s > deadline:
                raise
        time.sleep(pause_s)
        pause_s = min(2 * pause_s, 0.1)


def _install_sqlite_pragmas(engine: Engine) -> None:
    """WAL, foreign keys, busy timeout on every connection; BEGIN IMMEDIATE per transaction."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy (not the sqlite3 module) decide where transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            _enter_wal(cursor)
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_registry_engine(url: str) -> Engine:
    """An engine for ``url`` (SQLite: parent folder created, WAL + foreign keys).

    Raises:
        RegistryError: malformed URL, unknown driver, or a SQLite folder that cannot be created.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise RegistryError(
            f"registry database URL {mask_url(url)!r} is not a valid SQLAlchemy URL ({exc}); "
            f"use e.g. sqlite:////abs/path/registry.db or "
            f"postgresql+psycopg://user:password@host:5432/dbname"
        ) from None
    kwargs: dict[str, Any] = {"future": True}
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if _is_sqlite_memory(parsed):
            kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
        else:
            assert parsed.database is not None
            folder = Path(parsed.database).expanduser().absolute().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RegistryError(
                    f"registry database {mask_url(parsed)}: cannot create folder {folder}: "
                    f"{exc.strerror or exc}. Set paths.artifacts_dir or paths.db_url to a "
                    f"writable place."
                ) from None
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    elif backend == "postgresql":
        kwargs.update(
            pool_pre_ping=True, connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S}
        )
    try:
        engine = create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ImportError, ArgumentError) as exc:
        raise RegistryError(
            f"registry database {mask_url(parsed)}: no usable driver for "
            f"'{parsed.drivername}' ({exc}); use sqlite:///... or postgresql+psycopg://..."
        ) from None
    if backend == "sqlite":
        _install_sqlite_pragmas(engine)
    return engine


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """An Alembic Config built in code, pointing at the migrations inside this package.

    ``connection`` (preferred) is handed to ``env.py``; ``url`` is used for offline SQL output.
    """
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS_LOCATION)
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@contextmanager
def _connect(engine: Engine) -> Iterator[Connection]:
    try:
        connection = engine.connect()
    except (DBAPIError, SQLAlchemyError) as exc:
        raise connect_error(exc, engine.url) from None
    try:
        yield connection
    finally:
        connection.close()


def stored_revision(connection: Connection) -> str | None:
    """The revision in Alembic's version table, read with a plain query (None when the table
    is absent or empty).

    Raises:
        RegistryError: several revisions stored (a branched schema this package never makes).
    """
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    stored = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    if len(stored) > 1:
        raise RegistryError(
            f"registry database {mask_url(connection.engine.url)} records several schema "
            f"revisions ({', '.join(sorted(stored))}); this package keeps one line of migrations"
        )
    return str(stored[0]) if stored else None


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for an empty database); no Alembic import."""
    with _connect(engine) as connection:
        try:
            return stored_revision(connection)
        except SQLAlchemyError as exc:
            raise db_error(exc, engine.url, "reading the schema revision") from None


def _run(engine: Engine, action: str, fn: Any, revision: str) -> None:
    from alembic.util.exc import CommandError

    with _connect(engine) as connection:
        try:
            fn(alembic_config(connection), revision)
        except CommandError as exc:
            raise RegistryError(
                f"registry database {mask_url(engine.url)}: {action} to {revision!r} failed: "
                f"{exc}. Known revisions: {', '.join(sorted(known_revisions()))} "
                f"(or 'head' / 'base')."
            ) from None
        except SQLAlchemyError as exc:
            raise db_error(exc, engine.url, f"{action} to {revision!r}") from None


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database up to ``revision`` (atomic; safe to run concurrently)."""
    from alembic import command

    _run(engine, "schema upgrade", command.upgrade, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Migrate the database down to ``revision`` (``base`` drops every registry table)."""
    from alembic import command

    _run(engine, "schema downgrade", command.downgrade, revision)


def ensure_schema(engine: Engine) -> str:
    """Upgrade to head when the database is behind; return the revision it is at.

    The stored revision is read with a plain query and the head from the migration files
    (:mod:`forex_diffusion.registry.revisions`), so a database at head (every open after the
    first) runs no Alembic code.

    Raises:
        RegistryError: unreachable database, or a schema newer than this package.
    """
    head = head_revision()
    current = current_revision(engine)
    if current == head:
        return head
    if current is not None and current not in known_revisions():
        raise RegistryError(
            f"registry database {mask_url(engine.url)} is at schema revision {current!r}, "
            f"which this version of forex_diffusion does not know (its newest is {head!r}). "
            f"Upgrade forex_diffusion, or point paths.db_url / {ENV_DB_URL} at another database."
        )
    upgrade(engine, "head")
    return head
