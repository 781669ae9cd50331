"""The ``forex-diffusion`` console command: one typer app, one sub-app per module.

The command modules keep their tops light (typer and ``config.presets`` only) and import
pandas, SQLAlchemy, torch and lightning inside the commands that need them, so that
``--help`` and the light commands start at once.
"""

from __future__ import annotations

import gc

import typer

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


def main() -> None:
    """Run the app with the cyclic garbage collector set for a command line.

    Start-up creates hundreds of thousands of long-lived objects (torch, pandas, the ORM), and
    the default thresholds scan them again and again while they load, then once more when
    the interpreter exits. Here the young generation collects after ``YOUNG_GENERATION``
    allocations instead, and what exists when the command ends is frozen (``gc.freeze``), so
    exit does not walk it. Collection still runs: a long command (train, serve) frees its
    reference cycles as before, only in larger batches.
    """
    gc.set_threshold(YOUNG_GENERATION, 20, 20)
    try:
        app()
    finally:
        gc.freeze()


if __name__ == "__main__":
    main()
