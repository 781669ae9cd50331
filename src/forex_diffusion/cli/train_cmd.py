"""``forex-diffusion train``."""

from __future__ import annotations

from typing import Annotated

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
    friendly_errors,
    load_cli_config,
)
from forex_diffusion.config.presets import DEFAULT_CONFIG_PATH


def train(
    asset: AssetOpt = None,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    asset_config: AssetConfigOpt = None,
    preset: PresetOpt = None,
    override: OverrideOpt = None,
    data_dir: DataDirOpt = None,
    artifacts_dir: ArtifactsDirOpt = None,
    db_url: DbUrlOpt = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from last.ckpt of this asset/model.")
    ] = False,
) -> None:
    """Train one SSSD model for an asset from the candle store; checkpoints and runs go to the registry."""
    from forex_diffusion.cli.calibrate_cmd import calibrate_model, describe
    from forex_diffusion.errors import DataError
    from forex_diffusion.training.data_module import SSSDDataModule
    from forex_diffusion.training.train_sssd import SSSDTrainer

    where = Locations(data_dir, artifacts_dir, db_url)
    with friendly_errors():
        cfg = load_cli_config(
            config, asset_config, override, asset=asset, preset=preset, where=where
        )
        data_module = SSSDDataModule(data_path=where.settings().data_dir_for(cfg), config=cfg)
        with where.registry(cfg) as registry:
            result = SSSDTrainer(cfg, registry=registry).train(data_module, resume=resume)
    typer.echo(result.to_json())
    if result.status != "completed":
        raise typer.Exit(code=1)
    if cfg.inference.calibrated and result.best_checkpoint is not None:
        # the recalibration map, fitted on the validation range; the trained model stands
        # without it (forecasts are then raw, and say so)
        try:
            cal = calibrate_model(cfg, result.best_checkpoint, where.settings().data_dir_for(cfg))
        except DataError as exc:
            typer.echo(f"calibration skipped: {exc}", err=True)
        else:  # on stderr: stdout stays the run's JSON
            typer.echo(describe(cal, result.best_checkpoint), err=True)
