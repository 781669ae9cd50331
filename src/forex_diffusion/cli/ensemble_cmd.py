"""``forex-diffusion ensemble fit|predict``: the stacking ensemble and CRPS pool of an asset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from forex_diffusion.cli.common import (
    ArtifactsDirOpt,
    AssetConfigOpt,
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
    from forex_diffusion.config.sssd_config import SSSDConfig

ensemble_app = typer.Typer(
    help="Stacking ensemble (Ridge, Lasso, gradient boosting, SSSD) and CRPS pool.",
    no_args_is_help=True,
)

AssetReq = Annotated[str, typer.Option("--asset", "-a", help="Asset symbol, e.g. EURUSD.")]
NameOpt = Annotated[str, typer.Option("--name", help="Registry name of the ensemble.")]
StartOpt = Annotated[str, typer.Option("--start", help="First decision time (UTC date/time).")]
EndOpt = Annotated[str, typer.Option("--end", help="End of the decision times (exclusive).")]


@ensemble_app.command("fit")
def fit(
    asset: AssetReq,
    start: StartOpt,
    end: EndOpt,
    horizon: Annotated[int, typer.Option("--horizon", help="Horizon in minutes.")] = 60,
    name: NameOpt = "stack_ensemble",
    model_name: Annotated[
        str | None, typer.Option("--model-name", help="SSSD model to load (default: best).")
    ] = None,
    refit: Annotated[
        bool, typer.Option("--refit/--no-refit", help="Train SSSD per fold instead of loading.")
    ] = False,
    calibrated: Annotated[
        bool, typer.Option("--calibrated/--raw", help="Recalibrate SSSD's samples per fold.")
    ] = True,
    n_splits: Annotated[int, typer.Option("--n-splits", help="Walk-forward folds.")] = 5,
    num_samples: Annotated[int, typer.Option("--num-samples", help="SSSD samples.")] = 100,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    asset_config: AssetConfigOpt = None,
    preset: PresetOpt = None,
    override: OverrideOpt = None,
    data_dir: DataDirOpt = None,
    artifacts_dir: ArtifactsDirOpt = None,
    db_url: DbUrlOpt = None,
) -> None:
    """Fit the stack on [start, end) with purged walk-forward folds, fit the CRPS pool on the
    out-of-fold rows, and register it (model type ``stacking_ensemble``)."""
    from forex_diffusion.ensemble.workflow import EnsembleSpec, fit_ensemble

    where = Locations(data_dir, artifacts_dir, db_url)
    with friendly_errors():
        cfg = load_cli_config(
            config, asset_config, override, asset=asset, preset=preset, where=where
        )
        spec = EnsembleSpec(
            asset=asset.upper(),
            horizon=horizon,
            start=start,
            end=end,
            name=name,
            model_name=model_name,
            refit=refit,
            calibrated=calibrated,
            n_splits=n_splits,
            num_samples=num_samples,
            config_path=str(config),
            preset=preset,
            overrides=(*(override or ()), *_path_overrides(cfg, where)),
            data_dir=str(data_dir) if data_dir else None,
        )
        record, ensemble = fit_ensemble(spec, cfg)
    typer.echo(
        json.dumps(
            {"asset": record.asset, "model_name": record.model_name, **ensemble.summary},
            indent=2,
        )
    )


@ensemble_app.command("predict")
def predict(
    asset: AssetReq,
    start: StartOpt,
    end: EndOpt,
    name: NameOpt = "stack_ensemble",
    output: Annotated[
        Path | None, typer.Option("--output", help="Write the table as CSV here.")
    ] = None,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    asset_config: AssetConfigOpt = None,
    preset: PresetOpt = None,
    override: OverrideOpt = None,
    data_dir: DataDirOpt = None,
    artifacts_dir: ArtifactsDirOpt = None,
    db_url: DbUrlOpt = None,
) -> None:
    """Forecasts of a registered ensemble for the decision times in [start, end), with the
    member weights used for each (basis points of log return)."""
    from forex_diffusion.ensemble.workflow import predict_ensemble

    where = Locations(data_dir, artifacts_dir, db_url)
    with friendly_errors():
        cfg = load_cli_config(
            config, asset_config, override, asset=asset, preset=preset, where=where
        )
        frame = predict_ensemble(
            cfg, asset, name, start, end, data_dir=str(data_dir) if data_dir else None
        )
    if output is not None:
        frame.to_csv(output)
        typer.echo(f"wrote {len(frame)} forecasts to {output}")
    else:
        typer.echo(frame.to_string(float_format=lambda v: f"{v:.4f}"))


def _path_overrides(cfg: SSSDConfig, where: Locations) -> tuple[str, ...]:
    """The registry and checkpoint locations of ``cfg`` as dotted overrides, when a flag moved
    them: the SSSD member rebuilds its configuration from the overrides (in worker folds too)."""
    if where.artifacts_dir is None and where.db_url is None:
        return ()
    paths = cfg.paths
    found = {
        "artifacts_dir": paths.artifacts_dir,
        "checkpoint_dir": paths.checkpoint_dir,
        "log_dir": paths.log_dir,
        "db_url": paths.db_url,
    }
    return tuple(f"paths.{k}={json.dumps(str(v))}" for k, v in found.items() if v is not None)
