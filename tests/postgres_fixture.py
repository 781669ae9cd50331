"""A real, throw-away PostgreSQL server for tests (pytest plugin, loaded from conftest.py).

``postgres_server`` (session scope) runs ``initdb`` into a fresh temporary folder and
``pg_ctl start`` on a free loopback port, and stops and deletes it at the end. Under
pytest-xdist every worker process gets its own server (own folder, own port), so ``-n 2`` is
safe. When the process runs as root (containers, CI), the server runs as the ``postgres`` user
(or ``nobody``) because PostgreSQL refuses to run as root.

``registry_url`` is parametrised over ``sqlite`` and ``postgresql`` (marked ``postgres``); each
test gets an empty database of its own. Without server binaries the postgresql params skip
with the reason, unless FOREX_DIFFUSION_REQUIRE_POSTGRES=1 (then they fail).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PG_SEARCH_DIRS = (
    "/usr/local/bin",
    "/usr/bin",
    *sorted(glob.glob("/usr/lib/postgresql/*/bin"))[::-1],
)
SUPERUSER = "fxtest"


def find_pg_bindir() -> Path | None:
    """A folder holding initdb, pg_ctl and postgres: PATH first, then Debian's versioned dirs."""
    on_path = shutil.which("initdb")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    candidates += [Path(d) for d in PG_SEARCH_DIRS]
    for folder in candidates:
        if all((folder / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as() -> str | None:
    """The unprivileged account to run the server as when we are root (else None)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists")


@dataclass
class PostgresServer:
    bindir: Path
    root: Path
    port: int = 0
    user: str | None = None
    _names: Iterator[int] = field(default_factory=itertools.count)

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    def _cmd(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in args],
            user=self.user,
            cwd=self.root,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    @classmethod
    def start(cls, bindir: Path) -> PostgresServer:
        user = _run_as()
        root = Path(tempfile.mkdtemp(prefix="fxd-pg-"))
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        server = cls(bindir=bindir, root=root, user=user)
        server._cmd(
            bindir / "initdb",
            "-D",
            server.datadir,
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        )
        last_error = ""
        for _attempt in range(5):  # a port taken between probing and binding: try another
            server.port = _free_port()
            options = (
                f"-p {server.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c shared_buffers=16MB -c max_connections=40"
            )
            result = server._cmd(
                bindir / "pg_ctl",
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                server.datadir,
                "-l",
                server.root / "server.log",
                "-o",
                options,
                check=False,
            )
            if result.returncode == 0:
                return server
            log = server.root / "server.log"
            last_error = result.stderr + (log.read_text() if log.exists() else "")
        server.remove()
        raise RuntimeError(f"could not start PostgreSQL from {bindir}: {last_error[-2000:]}")

    def url(self, database: str = "postgres", password: str | None = None) -> str:
        auth = SUPERUSER if password is None else f"{SUPERUSER}:{password}"
        return f"postgresql+psycopg://{auth}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}"
        conninfo = f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname=postgres"
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 STRATEGY FILE_COPY')
        return self.url(name)

    def stop(self) -> None:
        self._cmd(
            self.bindir / "pg_ctl", "stop", "-m", "immediate", "-D", self.datadir, check=False
        )

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bindir = find_pg_bindir()
    if bindir is None:
        reason = (
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH or in "
            "/usr/lib/postgresql/*/bin; install them (Debian: apt-get install postgresql-15)"
        )
        if os.environ.get("FOREX_DIFFUSION_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    server = PostgresServer.start(bindir)
    try:
        yield server
    finally:
        server.stop()
        server.remove()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty registry database URL, once on SQLite and once on a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()
