"""Options and error handling shared by the CLI sub-commands."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from forex_diffusion.config.sssd_config import DEFAULT_CONFIG_PATH, SSSDConfig, load_sssd_config
from forex_diffusion.errors import ForexDiffusionError

F = TypeVar("F", bound=Callable[..., object])

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Default config YAML.")]
AssetConfigOpt = Annotated[
    Path | None, typer.Option("--asset-config", help="Asset config YAML layered on top.")
]
OverrideOpt = Annotated[
    list[str] | None,
    typer.Option("--override", "-o", help="Dotted override, e.g. training.epochs=10 (repeatable)."),
]


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn the package's own errors into a one-paragraph message and exit code 2."""
    try:
        yield
    except ForexDiffusionError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None


def load_cli_config(
    config: Path = DEFAULT_CONFIG_PATH,
    asset_config: Path | None = None,
    override: list[str] | None = None,
) -> SSSDConfig:
    return load_sssd_config(config, asset_config, override or ())
