"""Options and error handling shared by the CLI sub-commands.

This module (like every ``cli`` module top) imports only typer and the light
``forex_diffusion.config.presets``: ``--help`` must not pay for pydantic, pandas, SQLAlchemy or
torch. Heavy modules are imported inside the functions that use them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from forex_diffusion.config.presets import DEFAULT_CONFIG_PATH

if TYPE_CHECKING:
    from rich.console import Console

    from forex_diffusion.config.sssd_config import SSSDConfig
    from forex_diffusion.registry.repository import Registry
    from forex_diffusion.settings import Settings

# The names of forex_diffusion.settings (a test checks they agree): written out here because
# that module imports pydantic-settings, which --help must not pay for.
_ENV_DATA_DIR = "FOREX_DIFFUSION_DATA_DIR"
_ENV_ARTIFACTS_DIR = "FOREX_DIFFUSION_ARTIFACTS_DIR"
_ENV_DB_URL = "FOREX_DIFFUSION_DB_URL"

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
        help=f"Candle store root (default: env {_ENV_DATA_DIR}, then config paths.data_dir).",
    ),
]
ArtifactsDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--artifacts-dir",
        help=f"Artifacts root: registry.db, checkpoints and logs (default: env "
        f"{_ENV_ARTIFACTS_DIR}, then config paths.artifacts_dir).",
    ),
]
DbUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--db-url",
        help=f"SQLAlchemy URL of the registry (default: env {_ENV_DB_URL}, then config "
        "paths.db_url, then <artifacts>/registry.db).",
    ),
]
OverrideOpt = Annotated[
    list[str] | None,
    typer.Option("--override", "-o", help="Dotted override, e.g. training.epochs=10 (repeatable)."),
]


@dataclass(frozen=True)
class Locations:
    """The ``--data-dir``, ``--artifacts-dir`` and ``--db-url`` flags of a command (None = not
    given); the environment and the config fill in the rest (``forex_diffusion.settings``)."""

    data_dir: Path | None = None
    artifacts_dir: Path | None = None
    db_url: str | None = None

    def settings(self) -> Settings:
        """The flags over the ``FOREX_DIFFUSION_*`` environment."""
        from forex_diffusion.settings import Settings

        return Settings.from_flags(
            data_dir=self.data_dir, artifacts_dir=self.artifacts_dir, db_url=self.db_url
        )

    def registry(self, config: SSSDConfig) -> Registry:
        """The registry these locations name (flag > env > ``config.paths``)."""
        from forex_diffusion.registry.repository import Registry

        return Registry(self.settings().db_url_for(config), config)


def wide_console() -> Console:
    """A rich console for stdout that does not wrap or truncate tables when stdout is a pipe
    or a file."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=200)


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn the package's own errors into a one-paragraph message and exit code 2."""
    from forex_diffusion.errors import ForexDiffusionError

    try:
        yield
    except ForexDiffusionError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None


def cli_layers(
    config: Path = DEFAULT_CONFIG_PATH,
    asset_config: Path | None = None,
    override: list[str] | None = None,
    asset: str | None = None,
    preset: str | None = None,
    where: Locations | None = None,
) -> tuple[SSSDConfig, dict[str, str]]:
    """The effective config of a command and where each dotted key came from.

    Layers, later wins: the default file < ``--preset`` < ``--asset-config`` < the
    ``FOREX_DIFFUSION_*`` environment < ``--override``/``--asset`` < ``--data-dir``/
    ``--artifacts-dir``/``--db-url``. ``--asset`` sets asset.symbol (and its pip size unless an
    asset config or an explicit override gives one). A new artifacts root moves
    ``paths.checkpoint_dir`` and ``paths.log_dir`` with it when they lay under the old one.
    """
    from forex_diffusion.config.sssd_config import (
        ConfigLayer,
        default_pip_size,
        load_traced_config,
    )
    from forex_diffusion.settings import Settings

    overrides = list(override or ())
    if asset is not None:
        pre = [f"asset.symbol={asset.upper()}"]
        if asset_config is None and not any(o.startswith("asset.pip_size=") for o in overrides):
            pre.append(f"asset.pip_size={default_pip_size(asset)}")
        overrides = pre + overrides
    env, flags = Settings(), (where or Locations()).settings()
    layers = [
        ConfigLayer.file("default", config),
        *([ConfigLayer.file("preset", preset, preset=True)] if preset is not None else []),
        *([ConfigLayer.file("asset file", asset_config)] if asset_config is not None else []),
        ConfigLayer.dotted("env", _location_overrides(env)),
        ConfigLayer.dotted("override", overrides),
        ConfigLayer.dotted("flag", _location_overrides(flags, unless=env)),
    ]
    return load_traced_config(layers, moves_with_artifacts=("checkpoint_dir", "log_dir"))


def _location_overrides(settings: Settings, unless: Settings | None = None) -> list[str]:
    """``paths.*`` overrides for the locations ``settings`` gives (those equal to ``unless``'s
    are left to that layer)."""
    out = []
    for name in ("data_dir", "artifacts_dir", "db_url"):
        value = getattr(settings, name)
        if value is not None and (unless is None or getattr(unless, name) != value):
            out.append(f"paths.{name}={json.dumps(str(value))}")  # a YAML string, always
    return out


def load_cli_config(
    config: Path = DEFAULT_CONFIG_PATH,
    asset_config: Path | None = None,
    override: list[str] | None = None,
    asset: str | None = None,
    preset: str | None = None,
    where: Locations | None = None,
) -> SSSDConfig:
    """The effective config of a command (see :func:`cli_layers`)."""
    return cli_layers(config, asset_config, override, asset, preset, where)[0]
