"""Start-up: ``--help`` and ``data info`` never import torch or lightning (nor, for ``--help``,
pandas, SQLAlchemy or pydantic), so the light commands answer at once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from forex_diffusion.cli import common, data_cmd, serve_cmd
from forex_diffusion.data.importers import FORMAT_NAMES
from forex_diffusion.data.store import CandleStore
from forex_diffusion.service.settings import TOKEN_ENV
from forex_diffusion.settings import ENV_ARTIFACTS_DIR, ENV_DATA_DIR, ENV_DB_URL
from import_probe import modules_after


@pytest.mark.parametrize(
    "args", [["--help"], ["predict", "--help"], ["evaluate", "--help"], ["serve", "--help"]]
)
def test_help_imports_nothing_heavy(args: list[str]) -> None:
    modules, out = modules_after(*args)
    assert "Usage" in out
    heavy = {"torch", "lightning", "pandas", "sqlalchemy", "matplotlib", "numpy"}
    if args == ["--help"]:  # typer itself imports pydantic to coerce a sub-command's options
        heavy.add("pydantic")
    assert not heavy & modules, sorted(heavy & modules)


def test_data_info_does_not_import_torch(tmp_path: Path) -> None:
    modules, out = modules_after("data", "info", "--data-dir", str(tmp_path / "store"))
    assert "is empty" in out
    assert not {"torch", "lightning"} & modules


def test_data_info_on_a_store_reads_only_what_it_needs(tmp_path: Path) -> None:
    """A stored asset is summarised without torch, pandas, DuckDB or the config: the year
    files are read (pyarrow, numpy) only until the store's manifest describes them."""
    store = tmp_path / "store"
    modules, out = modules_after(
        "data", "synth", "--start", "2021-03-01", "--end", "2021-03-02", "--data-dir", str(store)
    )
    assert "SYNTHETIC" in out
    heavy = {"torch", "lightning", "pandas", "duckdb", "sqlalchemy", "omegaconf"}
    bars = CandleStore(store).info("SYNTH").bars
    for read_files in (True, False):  # no manifest yet, then the manifest
        modules, out = modules_after("data", "info", "--data-dir", str(store))
        assert f"│ SYNTH │ 1m   │ {bars:,} │" in out, out
        assert not heavy & modules, sorted(heavy & modules)
        assert ({"pyarrow", "numpy"} <= modules) is read_files


def test_help_names_agree_with_the_modules_they_avoid() -> None:
    assert (common._ENV_DATA_DIR, common._ENV_ARTIFACTS_DIR, common._ENV_DB_URL) == (
        ENV_DATA_DIR,
        ENV_ARTIFACTS_DIR,
        ENV_DB_URL,
    )
    assert data_cmd.IMPORT_FORMATS == FORMAT_NAMES
    assert serve_cmd.TOKEN_ENV == TOKEN_ENV


def test_the_console_command_runs_with_the_cli_collector_settings() -> None:
    """The installed ``forex-diffusion`` is ``main`` (not the bare typer app), which collects
    the young generation rarely during start-up and freezes what exists at exit, so that the
    interpreter's exit does not walk the imported libraries (benchmarks/bench_cli.py)."""
    import subprocess
    import sys
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "forex-diffusion"]
    assert script.value == "forex_diffusion.cli.main:main"
    probe = (
        "import gc, sys\n"
        "from forex_diffusion.cli.main import YOUNG_GENERATION, run\n"
        "sys.argv = ['forex-diffusion', 'config', '--help']\n"
        "status = run()\n"
        "print(status, gc.get_threshold()[0] == YOUNG_GENERATION, gc.get_freeze_count() > 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0 True True"


LEAVE_PROBE = """
import atexit, sys, threading, time
from forex_diffusion.cli.main import main
atexit.register(lambda: print("atexit handler ran"))
if sys.argv[1] == "thread":  # a worker the normal exit would wait for
    threading.Thread(target=lambda: (time.sleep(0.5), print("thread finished"))).start()
sys.argv = ["forex-diffusion", *sys.argv[2:]]
main()
"""


@pytest.mark.parametrize(
    ("args", "status", "expected"),
    [
        (["none", "config", "--help"], 0, ["Usage: forex-diffusion config", "atexit handler ran"]),
        (["none", "data", "info", "--asset", "NOPE"], 2, ["atexit handler ran"]),
        (["thread", "config", "--help"], 0, ["thread finished", "atexit handler ran"]),
    ],
)
def test_the_console_command_ends_with_its_output_its_status_and_the_exit_handlers(
    args: list[str], status: int, expected: list[str], tmp_path: Path
) -> None:
    """``main`` leaves without the interpreter's teardown (``leave``): what the command wrote
    into a pipe still arrives, the exit status is the command's, ``atexit`` handlers run, and
    a thread still running is waited for as at a normal exit."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # a pipe buffers
    env["FOREX_DIFFUSION_DATA_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", LEAVE_PROBE, *args], capture_output=True, text=True, env=env
    )
    assert done.returncode == status, done.stderr
    lines = done.stdout.splitlines()
    for text in expected:
        assert any(text in line for line in lines), (text, done.stdout, done.stderr)
    assert lines[-1] == "atexit handler ran"  # last: after the command and the thread
