"""The ``forex-diffusion`` console command: one typer app, one sub-app per module."""

from __future__ import annotations

import typer

from forex_diffusion.cli.config_cmd import config_app

app = typer.Typer(
    name="forex-diffusion",
    help="Probabilistic multi-horizon FX forecasting (S4D encoders + diffusion head).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(config_app, name="config")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
