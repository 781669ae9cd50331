"""``forex-diffusion evaluate``: walk-forward evaluation against the baselines (SPEC §7)."""

from __future__ import annotations

from contextlib import ExitStack
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
from forex_diffusion.cli.progress import stage, steps
from forex_diffusion.config.presets import DEFAULT_CONFIG_PATH

if TYPE_CHECKING:  # the evaluation stack is imported when the command runs
    from forex_diffusion.config.sssd_config import SSSDConfig
    from forex_diffusion.evaluation.walk_forward import EvaluationResult


def evaluate(
    asset: Annotated[str, typer.Option("--asset", "-a", help="Asset symbol, e.g. EURUSD.")],
    start: Annotated[str, typer.Option("--start", help="First day evaluated (UTC), YYYY-MM-DD.")],
    end: Annotated[
        str, typer.Option("--end", help="Last day evaluated (UTC, inclusive), YYYY-MM-DD.")
    ],
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Model name (default: the asset's best checkpoint)."),
    ] = None,
    baselines_only: Annotated[
        bool, typer.Option("--baselines-only", help="Evaluate the baselines only, no model.")
    ] = False,
    stride: Annotated[
        int | None,
        typer.Option(
            "--stride", min=1, help="5m bars between decision times (default evaluation.stride)."
        ),
    ] = None,
    samples: Annotated[
        int | None,
        typer.Option(
            "--samples", min=2, help="Model samples per forecast (default inference.num_samples)."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Report folder (default <paths.reports_dir>/<ASSET>_<range>_<model>)."
        ),
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="auto, cpu or cuda (default inference.device).")
    ] = None,
    export: Annotated[
        Path | None,
        typer.Option(
            "--export",
            help="Also write every forecast (decision time × horizon × forecaster: realised, "
            "mean, std, quantiles, PIT, CRPS) to this .parquet or .csv file.",
        ),
    ] = None,
    data_dir: DataDirOpt = None,
    artifacts_dir: ArtifactsDirOpt = None,
    db_url: DbUrlOpt = None,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    asset_config: AssetConfigOpt = None,
    preset: PresetOpt = None,
    override: OverrideOpt = None,
    no_record: Annotated[
        bool,
        typer.Option("--no-record", help="Do not write rows to sssd_performance_metrics."),
    ] = False,
) -> None:
    """Walk-forward evaluation of a model (or the baselines alone) on a range it never saw.

    Writes report.md, metrics.json and PNG plots, records the metrics in the registry and prints the report's first table.

    Exit code 2: a bad range (one that overlaps the model's training or validation range), an unknown model, or missing candles.
    """
    from forex_diffusion.evaluation.export import EXPORT_SUFFIXES
    from forex_diffusion.evaluation.walk_forward import evaluate as run_evaluation

    if export is not None and export.suffix.lower() not in EXPORT_SUFFIXES:
        typer.secho(
            f"error: --export {export}: use a .parquet or .csv file name", fg="red", err=True
        )
        raise typer.Exit(code=2)
    where = Locations(data_dir, artifacts_dir, db_url)
    with friendly_errors(), ExitStack() as stack:
        check_out_dir(out)
        cfg = load_cli_config(
            config, asset_config, override, asset=asset, preset=preset, where=where
        )
        needs_registry = not no_record or not baselines_only
        registry = stack.enter_context(where.registry(cfg)) if needs_registry else None
        # a summary line only: the baselines and the walk-forward draw their own progress bars
        with stage(f"walk-forward evaluation of {asset.upper()}", enabled=False):
            result = run_evaluation(
                cfg,
                asset,
                start,
                end,
                model_name=model,
                baselines_only=baselines_only,
                stride=stride,
                num_samples=samples,
                out_dir=out,
                data_dir=where.settings().data_dir_for(cfg),
                device=device,
                registry=registry,
                record=not no_record,
                steps=steps,
            )
        exported = write_forecasts(result, export, cfg) if export is not None else None
        from forex_diffusion.evaluation.mlflow_report import log_evaluation

        mlflow_run = log_evaluation(cfg, result.summary, result.files)
    echo_result(result, exported)
    if mlflow_run is not None:
        typer.echo(f"MLflow: first table and report logged to run {mlflow_run}")


def check_out_dir(out: Path | None) -> None:
    """Refuse, before any work, a ``--out`` that is an existing file or lies under one."""
    from forex_diffusion.errors import DataError

    if out is None:
        return
    for part in (out, *out.parents):
        if part.exists():
            if not part.is_dir():
                what = "is an existing file" if part == out else f"lies under the file {part}"
                raise DataError(
                    f"--out {out} {what}; the report needs a folder (give a new or existing "
                    "folder path)"
                )
            return


def write_forecasts(result: EvaluationResult, path: Path, cfg: SSSDConfig) -> Path:
    """Write the per-forecast table of ``result`` (``evaluation.export``) to ``path`` and name
    it in the report."""
    from forex_diffusion.evaluation.export import forecast_frame, write_export
    from forex_diffusion.evaluation.report import note_export

    if result.decision_times is None:  # pragma: no cover - evaluate always sets them
        raise typer.BadParameter("this evaluation result carries no decision times")
    summary = result.summary
    frame = forecast_frame(
        result.forecasts,
        result.targets,
        result.last_close,
        result.decision_times,
        summary.horizons,
        cfg.evaluation.quantile_levels,
        summary.pip_size,
        summary.labels,
    )
    written = write_export(frame, path)
    note_export(result.files.report, written, len(frame))
    return written


def echo_result(result: EvaluationResult, exported: Path | None = None) -> None:
    """Print the report's first table, where the report is and the registry rows written."""
    typer.echo(result.text())
    typer.echo(f"Report: {result.files.report}")
    if exported is not None:
        typer.echo(f"Forecasts: {exported}")
    if result.metric_rows:
        typer.echo(f"Registry: {result.metric_rows} rows in sssd_performance_metrics")
