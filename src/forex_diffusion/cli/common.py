"""Options and error handling shared by the CLI sub-commands."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from forex_diffusion.config.sssd_config import (
    DEFAULT_CONFIG_PATH,
    SSSDConfig,
    default_pip_size,
    load_sssd_config,
)
from forex_diffusion.errors import ForexDiffusionError
from forex_diffusion.settings import ENV_DATA_DIR

F = TypeVar("F", bound=Callable[..., object])

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Default config YAML.")]
AssetConfigOpt = Annotated[
    Path | None, typer.Option("--asset-config", help="Asset config YAML layered on top.")
]
PresetOpt = Annotated[
    str | None, typer.Option("--preset", help="Preset layered over the defaults, e.g. cpu_small.")
]
AssetOpt = Annotated[str | None, typer.Option("--asset", "-a", help="Asset symbol, e.g. EURUSD.")]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help=f"Candle store root (default: env {ENV_DATA_DIR}, then config paths.data_dir).",
    ),
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
    asset: str | None = None,
    preset: str | None = None,
) -> SSSDConfig:
    """Merged config; ``--asset`` sets asset.symbol (and its pip size unless an asset config or
    an explicit override gives one)."""
    overrides = list(override or ())
    if asset is not None:
        pre = [f"asset.symbol={asset.upper()}"]
        if asset_config is None and not any(o.startswith("asset.pip_size=") for o in overrides):
            pre.append(f"asset.pip_size={default_pip_size(asset)}")
        overrides = pre + overrides
    return load_sssd_config(config, asset_config, overrides, preset=preset)
