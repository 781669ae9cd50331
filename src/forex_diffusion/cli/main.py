"""The ``forex-diffusion`` console command: one typer app, one sub-app per module.

The command modules keep their tops light (typer and ``config.presets`` only) and import
pandas, SQLAlchemy, torch and lightning inside the commands that need them, so that
``--help`` and the light commands start at once.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import sys
import threading
from typing import NoReturn

import typer

from forex_diffusion.allocator import keep_freed_memory
from forex_diffusion.cli.calibrate_cmd import calibrate
from forex_diffusion.cli.config_cmd import config_app
from forex_diffusion.cli.data_cmd import data_app
from forex_diffusion.cli.ensemble_cmd import ensemble_app
from forex_diffusion.cli.evaluate_cmd import evaluate
from forex_diffusion.cli.predict_cmd import predict
from forex_diffusion.cli.quickstart_cmd import quickstart
from forex_diffusion.cli.registry_cmd import db_app, registry_app
from forex_diffusion.cli.serve_cmd import serve
from forex_diffusion.cli.train_cmd import train
from forex_diffusion.cli.train_many_cmd import train_many
from forex_diffusion.cli.tune_cmd import tune

app = typer.Typer(
    name="forex-diffusion",
    help="Probabilistic multi-horizon FX forecasting (S4D encoders + diffusion head).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(config_app, name="config")
app.add_typer(data_app, name="data")
app.add_typer(registry_app, name="registry")
app.add_typer(db_app, name="db")
app.add_typer(ensemble_app, name="ensemble")
app.command("train")(train)
app.command("calibrate")(calibrate)
app.command("evaluate")(evaluate)
app.command("predict")(predict)
app.command("quickstart")(quickstart)
app.command("train-many")(train_many)
app.command("tune")(tune)
app.command("serve")(serve)


YOUNG_GENERATION = 50_000
"""Objects allocated between two collections of the youngest generation, for the CLI."""


def run() -> int:
    """Run the app with the cyclic garbage collector set for a command line; return the exit
    status.

    Start-up creates hundreds of thousands of long-lived objects (torch, pandas, the ORM), and
    the default thresholds scan them again and again while they load, then once more when
    the interpreter exits. Here the young generation collects after ``YOUNG_GENERATION``
    allocations instead, and what exists when the command ends is frozen (``gc.freeze``), so
    exit does not walk it. Collection still runs: a long command (train, serve) frees its
    reference cycles as before, only in larger batches. The process keeps the memory of freed
    large tensors for reuse (``allocator.keep_freed_memory``).
    """
    gc.set_threshold(YOUNG_GENERATION, 20, 20)
    keep_freed_memory()
    try:
        app()
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        raise  # a message as the status: the interpreter prints it
    finally:
        gc.freeze()
    return 0


def leave(status: int) -> NoReturn:
    """End the process with ``status`` once the command is done: the output flushed and the
    ``atexit`` handlers run (logging, multiprocessing, temporary folders) as at a normal exit,
    but without the interpreter's teardown of every imported module (torch's included), which
    would cost a command line a large share of a quick command's time. When a thread other
    than the main one is still running, the normal exit waits for it instead.
    """
    main_thread = threading.main_thread()
    if any(t is not main_thread and not t.daemon for t in threading.enumerate()):
        sys.exit(status)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader gone, a closed stream
            stream.flush()
    os._exit(status)


def main() -> NoReturn:
    """The ``forex-diffusion`` console command: :func:`run`, then :func:`leave`."""
    leave(run())


if __name__ == "__main__":
    main()
