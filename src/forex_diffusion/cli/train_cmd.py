"""``forex-diffusion train``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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

if TYPE_CHECKING:
    from torch import Tensor

    from forex_diffusion.config.sssd_config import SSSDConfig


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
    assets: Annotated[
        list[str] | None,
        typer.Option(
            "--assets",
            help="With --global: the assets of the global model, e.g. --assets EURUSD GBPUSD.",
        ),
    ] = None,
    more: Annotated[
        list[str] | None,
        typer.Argument(help="More assets after the first (--assets A B C).", show_default=False),
    ] = None,
    init_from: Annotated[
        Path | None,
        typer.Option(
            "--init-from",
            help="Fine-tune: start from this checkpoint's weights (e.g. a global model's "
            "best.ckpt; its network, features and windows are used).",
        ),
    ] = None,
    global_model: Annotated[
        bool,
        typer.Option(
            "--global",
            help="Train one global model on all --assets (asset embedding, per-asset "
            "standardizers); it is registered as asset GLOBAL and serves each of them.",
        ),
    ] = False,
) -> None:
    """Train one SSSD model for an asset (or one global model for several) from the candle
    store; checkpoints and runs go to the registry."""
    from forex_diffusion.cli.calibrate_cmd import calibrate_model, describe
    from forex_diffusion.errors import DataError
    from forex_diffusion.training.data_module import SSSDDataModule
    from forex_diffusion.training.multi_asset_data_module import MultiAssetDataModule
    from forex_diffusion.training.train_sssd import SSSDTrainer

    where = Locations(data_dir, artifacts_dir, db_url)
    with friendly_errors():
        if global_model or assets or more:
            asset, override = _global_options(
                asset, [*(assets or ()), *(more or ())], global_model, override
            )
        cfg = load_cli_config(
            config, asset_config, override, asset=asset, preset=preset, where=where
        )
        init_weights = None
        if init_from is not None:
            cfg, init_weights = _init_from(cfg, init_from)
        data_path = where.settings().data_dir_for(cfg)
        data_module = (
            MultiAssetDataModule(data_path, cfg)
            if cfg.model.assets
            else SSSDDataModule(data_path=data_path, config=cfg)
        )
        with where.registry(cfg) as registry:
            trainer = SSSDTrainer(cfg, registry=registry, init_weights=init_weights)
            result = trainer.train(data_module, resume=resume)
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


def _global_options(
    asset: str | None, assets: list[str] | None, global_model: bool, override: list[str] | None
) -> tuple[str, list[str]]:
    """(asset, overrides) of ``--global --assets A B ...``: the registry asset GLOBAL and
    ``model.assets``; a usage error names what is missing."""
    from forex_diffusion.dataset.multi_asset import GLOBAL_ASSET

    names = [n.strip().upper() for a in assets or () for n in a.replace(",", " ").split()]
    if not global_model:
        raise typer.BadParameter(
            "--assets (and extra arguments) train a global model: add --global, or train one "
            "asset with --asset"
        )
    if len(names) < 2:
        raise typer.BadParameter("--global needs two or more --assets, e.g. --assets EURUSD GBPUSD")
    if asset is not None and asset.upper() != GLOBAL_ASSET:
        raise typer.BadParameter(f"--global trains asset {GLOBAL_ASSET}: drop --asset {asset}")
    return GLOBAL_ASSET, [*(override or ()), f"model.assets=[{', '.join(names)}]"]


def _init_from(cfg: SSSDConfig, path: Path) -> tuple[SSSDConfig, dict[str, Tensor]]:
    """(config, initial weights) of a fine-tune from the checkpoint at ``path``."""
    from forex_diffusion.models.checkpoint import load_checkpoint
    from forex_diffusion.models.init_from import fine_tune_config, per_asset_weights

    if cfg.model.assets:
        raise typer.BadParameter("--init-from fine-tunes a per-asset model: drop --global")
    source = load_checkpoint(path)
    typer.echo(
        f"initialising {cfg.asset.symbol}/{cfg.model.name} from {path}"
        + (
            f" (global model of {source.config.model.assets}, unseen-asset row)"
            if source.config.model.assets
            else ""
        ),
        err=True,
    )
    return fine_tune_config(cfg, source), per_asset_weights(source)
