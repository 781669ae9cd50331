"""``forex-diffusion config show|schema``."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from forex_diffusion.cli.common import (
    ArtifactsDirOpt,
    AssetConfigOpt,
    AssetOpt,
    ConfigOpt,
    DataDirOpt,
    DbUrlOpt,
    Locations,
    OverrideOpt,
    PresetOpt,
    cli_layers,
    friendly_errors,
)
from forex_diffusion.config.presets import DEFAULT_CONFIG_PATH

config_app = typer.Typer(
    help="Show the effective configuration (and where each value came from) or its JSON schema.",
    no_args_is_help=True,
)


def annotated_yaml(data: dict[str, Any], sources: dict[str, str]) -> str:
    """``data`` as YAML with ``# <source>`` after every leaf value (sources by dotted key)."""
    import yaml

    lines: list[str] = []

    def walk(node: dict[str, Any], prefix: str, indent: int) -> None:
        pad = "  " * indent
        for key, value in node.items():
            dotted = f"{prefix}{key}"
            if isinstance(value, dict) and value:
                lines.append(f"{pad}{key}:")
                walk(value, f"{dotted}.", indent + 1)
                continue
            text = yaml.safe_dump({key: value}, default_flow_style=True, width=10_000).strip()
            text = text[1:-1] if text.startswith("{") else text  # {key: value} -> key: value
            lines.append(f"{pad}{text}  # {sources.get(dotted, 'default')}")

    walk(data, "", 0)
    return "\n".join(lines) + "\n"


@config_app.command("show")
def show(
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    asset: AssetOpt = None,
    asset_config: AssetConfigOpt = None,
    override: OverrideOpt = None,
    preset: PresetOpt = None,
    data_dir: DataDirOpt = None,
    artifacts_dir: ArtifactsDirOpt = None,
    db_url: DbUrlOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON: {key: {value, source}} by dotted key.")
    ] = False,
) -> None:
    """Print the effective configuration as YAML, each value followed by where it came from:
    default, preset, asset file, env (FOREX_DIFFUSION_*), override (-o/--asset) or flag."""
    with friendly_errors():
        cfg, sources = cli_layers(
            config,
            asset_config,
            override,
            asset,
            preset,
            Locations(data_dir, artifacts_dir, db_url),
        )
    data = cfg.to_dict()
    if as_json:
        flat = _flatten(data)
        typer.echo(
            json.dumps(
                {k: {"value": v, "source": sources.get(k, "default")} for k, v in flat.items()},
                indent=2,
            )
        )
        return
    typer.echo(annotated_yaml(data, sources), nl=False)


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@config_app.command("schema")
def schema() -> None:
    """Print the JSON schema of the configuration (every key with its description)."""
    from forex_diffusion.config.sssd_config import config_json_schema

    typer.echo(json.dumps(config_json_schema(), indent=2))
