"""``forex-diffusion calibrate``: fit a model's quantile recalibration on its validation range."""

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
    from forex_diffusion.config.sssd_config import SSSDConfig
    from forex_diffusion.inference.calibrate import CalibrationResult


def calibrate_model(
    cfg: SSSDConfig, checkpoint: Path, data_dir: str | Path | None = None
) -> dict[str, CalibrationResult]:
    """Fit on the model's validation range from the store and write the map into ``checkpoint``
    (per horizon, or per horizon and cell: ``cfg.inference.calibration_by``):
    {asset: result}, one entry per asset of a global model."""
    from forex_diffusion.cli.progress import stage
    from forex_diffusion.data.store import CandleStore, resolve_data_dir
    from forex_diffusion.inference.calibrate import (
        calibrate_checkpoint,
        calibrate_global_checkpoint,
    )
    from forex_diffusion.models.checkpoint import load_checkpoint

    icfg = cfg.inference
    assets = load_checkpoint(checkpoint).config.model.assets
    what = f"calibration on the validation range{f' of {len(assets)} assets' if assets else ''}"
    with CandleStore(resolve_data_dir(cfg, data_dir)) as store, stage(what):
        fit = calibrate_global_checkpoint if assets else calibrate_checkpoint
        result = fit(
            checkpoint,
            store,
            num_samples=icfg.calibration_samples,
            max_forecasts=icfg.calibration_forecasts,
            by=icfg.calibration_by,
            min_cell_forecasts=icfg.calibration_min_cell_forecasts,
            location=icfg.calibration_location,
            evidence=icfg.calibration_evidence,
        )
    return result if isinstance(result, dict) else {cfg.asset.symbol: result}


def describe(results: dict[str, CalibrationResult], checkpoint: Path) -> str:
    """What happened, one line per horizon (in-sample coverage on the calibration forecasts)."""
    from forex_diffusion.calibration import CellRecalibrator

    lines = []
    for asset, result in results.items():
        lines += [
            f"{asset}: calibration fitted on {result.forecasts} forecasts of {result.range} and "
            f"stored in {checkpoint}",
        ]
        if isinstance(result.calibration, CellRecalibrator):
            own = "; ".join(
                f"{name} {', '.join(str(h) for h in r.horizons)} min"
                for name, r in result.calibration.by_cell.items()
            )
            lines.append(
                f"maps per horizon and {result.calibration.grouping}: {own or 'none'} "
                "(other cells: per-horizon map)"
            )
        location = result.calibration.location
        if location is not None:
            lines.append(
                "location kept (share of the median, by the CRPS on these forecasts): "
                + ", ".join(f"{h} min {k:.0%}" for h, k in location.keep.items())
            )
        evidence = result.calibration.fitted_on.get("evidence")
        if evidence:
            lines.append(
                "map kept (share of its departure from the identity that the independent "
                "outcomes support): "
                + ", ".join(
                    f"{h} min {e['map_weight']:.0%} ({e['independent_outcomes']:,} outcomes)"
                    for h, e in evidence.items()
                )
            )
        lines.append("horizon  90% coverage raw -> calibrated (in-sample)")
        for h, before in result.coverage90_before.items():
            lines.append(f"{h:>4} min  {before:6.1%} -> {result.coverage90_after[h]:6.1%}")
    return "\n".join(lines)


def calibrate(
    asset: AssetOpt = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Model name (default: config's).")
    ] = None,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    asset_config: AssetConfigOpt = None,
    preset: PresetOpt = None,
    override: OverrideOpt = None,
    data_dir: DataDirOpt = None,
    artifacts_dir: ArtifactsDirOpt = None,
    db_url: DbUrlOpt = None,
) -> None:
    """Fit the quantile recalibration of a trained model on its validation range and store it in
    its best checkpoint; predict, evaluate and the service then use it (inference.calibrated).
    One map per horizon, or with -o inference.calibration_by=session (or phase) one per
    horizon and trading session (or 5-minute slot of the hour) of the decision time
    (inference.calibration_min_cell_forecasts: thinner cells keep the per-horizon map)."""
    from forex_diffusion.inference.sssd_inference import load_sssd_inference_service

    where = Locations(data_dir, artifacts_dir, db_url)
    with friendly_errors():
        cfg = load_cli_config(
            config, asset_config, override, asset=asset, preset=preset, where=where
        )
        with where.registry(cfg) as registry:
            service = load_sssd_inference_service(
                cfg.asset.symbol, model_name=model, config=cfg, registry=registry
            )
        if service.checkpoint_path is None:
            raise typer.BadParameter("the model was not loaded from a checkpoint file")
        result = calibrate_model(
            service.config, service.checkpoint_path, where.settings().data_dir_for(cfg)
        )
    typer.echo(describe(result, service.checkpoint_path))
