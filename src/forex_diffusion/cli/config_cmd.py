"""``forex-diffusion config show|schema``."""

from __future__ import annotations

import json

import typer

from forex_diffusion.cli.common import (
    AssetConfigOpt,
    ConfigOpt,
    OverrideOpt,
    PresetOpt,
    friendly_errors,
    load_cli_config,
)
from forex_diffusion.config.sssd_config import DEFAULT_CONFIG_PATH, config_json_schema

config_app = typer.Typer(
    help="Show the merged configuration or its JSON schema.", no_args_is_help=True
)


@config_app.command("show")
def show(
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    asset_config: AssetConfigOpt = None,
    override: OverrideOpt = None,
    preset: PresetOpt = None,
) -> None:
    """Print the merged, validated configuration as YAML."""
    with friendly_errors():
        typer.echo(load_cli_config(config, asset_config, override, preset=preset).to_yaml())


@config_app.command("schema")
def schema() -> None:
    """Print the JSON schema of the configuration."""
    typer.echo(json.dumps(config_json_schema(), indent=2))
