"""``forex-diffusion predict``: the forecast table (and fan chart) for the latest bar or ``--asof``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from forex_diffusion.cli.common import (
    ConfigOpt,
    DataDirOpt,
    OverrideOpt,
    friendly_errors,
    load_cli_config,
)
from forex_diffusion.config.sssd_config import DEFAULT_CONFIG_PATH, SSSDConfig
from forex_diffusion.errors import DataError
from forex_diffusion.inference.prediction import SSSDPrediction
from forex_diffusion.inference.sssd_inference import SSSDInferenceService
from forex_diffusion.timeinput import parse_utc


def forecast_table(service: SSSDInferenceService, pred: SSSDPrediction) -> Table:
    """Per horizon: mean ± std in pips, q05/q50/q95 as price levels, direction, confidence."""
    table = Table(
        title=f"{pred.asset} at {pred.timestamp:%Y-%m-%d %H:%M} UTC · last close {pred.last_close:.5f}"
    )
    for col in ("horizon", "mean ± std (pips)", "q05", "q50", "q95", "direction", "confidence"):
        table.add_column(col, justify="right")
    pips, levels = pred.in_pips(), pred.price_levels()
    for h in pred.horizons:
        table.add_row(
            f"{h} min",
            f"{pips['mean'][h]:+.1f} ± {pips['std'][h]:.1f}",
            f"{levels['q05'][h]:.5f}",
            f"{levels['q50'][h]:.5f}",
            f"{levels['q95'][h]:.5f}",
            service.get_direction(pred, h),
            f"{service.get_directional_confidence(pred, h):.0%}",
        )
    table.caption = (
        f"{pred.model_name} · {pred.num_samples} samples · {pred.inference_time_ms:.0f} ms"
    )
    return table


def predict(
    asset: Annotated[str, typer.Option("--asset", "-a", help="Asset symbol, e.g. EURUSD.")],
    model: Annotated[
        str | None, typer.Option("--model", help="Model name (default: registry's best).")
    ] = None,
    asof: Annotated[
        str | None, typer.Option("--asof", help='Decision time, e.g. "2019-06-03T12:00Z".')
    ] = None,
    samples: Annotated[
        int | None,
        typer.Option(
            "--samples",
            min=2,
            max=10_000,
            help="Samples per forecast (default inference.num_samples).",
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Write a fan-chart PNG here (a .png file or a folder)."),
    ] = None,
    allow_stale: Annotated[
        bool,
        typer.Option(
            "--allow-stale",
            help="Forecast even when the latest bar is older at --asof than "
            "inference.max_staleness_minutes.",
        ),
    ] = False,
    checkpoint_dir: Annotated[Path | None, typer.Option("--checkpoint-dir")] = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    override: OverrideOpt = None,
) -> None:
    """Forecast the next 5/15/60/240 minutes for an asset from the candle store."""
    if fmt not in ("table", "json"):
        raise typer.BadParameter("--format must be 'table' or 'json'")
    with friendly_errors():
        when = parse_utc(asof, "--asof") if asof is not None else None
        check_plot_path(plot)
        cfg = load_cli_config(config, None, override)
        pred, service, candles = run_prediction(
            cfg, asset, model, when, samples, checkpoint_dir, data_dir, allow_stale
        )
        written = write_fan_chart(candles, pred, plot) if plot is not None else None
    if fmt == "json":
        typer.echo(json.dumps(pred.to_dict(), indent=2))
    else:
        Console().print(forecast_table(service, pred))
    if written is not None:
        typer.echo(f"fan chart written to {written}")


def check_plot_path(plot: Path | None) -> None:
    """Refuse a ``--plot`` that is neither an existing folder nor a ``.png`` file path, before
    any work."""
    if plot is None or plot.is_dir():
        return
    if plot.suffix.lower() != ".png":
        raise DataError(
            f"--plot {plot}: give a .png file name or an existing folder (the chart is a PNG)"
        )
    if plot.parent.exists() and not plot.parent.is_dir():
        raise DataError(f"--plot {plot}: {plot.parent} is a file, not a folder")


def run_prediction(
    cfg: SSSDConfig,
    asset: str,
    model: str | None,
    asof: str | pd.Timestamp | None,
    samples: int | None,
    checkpoint_dir: Path | None,
    data_dir: Path | None,
    allow_stale: bool = False,
) -> tuple[SSSDPrediction, SSSDInferenceService, pd.DataFrame]:
    """Load the service and the candles it needs from the store, and forecast (``samples``
    None = ``inference.num_samples``; the device is ``inference.device``).

    With ``asof`` after the store's latest bar by more than ``inference.max_staleness_minutes``
    the forecast is refused (DataError saying how old the bar is) unless ``allow_stale``."""
    from forex_diffusion.data.store import CandleStore, resolve_data_dir
    from forex_diffusion.inference.sssd_inference import load_sssd_inference_service
    from forex_diffusion.timeframes import timeframe_minutes

    end = parse_utc(asof, "--asof") if asof is not None else None
    service = load_sssd_inference_service(
        asset, checkpoint_dir=checkpoint_dir, model_name=model, config=cfg
    )
    store = CandleStore(resolve_data_dir(cfg, data_dir))
    latest = store.last_bar(asset.upper())
    latest_close = latest + pd.Timedelta(minutes=timeframe_minutes(store.base_timeframe(asset)))
    if end is not None and end > latest_close:
        if not allow_stale:
            service.check_staleness(end, latest_close)
        end = latest_close  # the store ends before asof: its latest bars are all there is
    last = end if end is not None else latest_close
    candles = store.load(asset.upper(), start=last - service.history_span, end=end)
    pred = service.predict(candles, num_samples=samples, asof=end, allow_stale=allow_stale)
    return pred, service, candles


def write_fan_chart(candles: pd.DataFrame, pred: SSSDPrediction, path: Path) -> Path:
    """The fan chart PNG of ``pred`` over the last day of 5m bars of ``candles``; ``path`` may
    be a folder (the file is ``<ASSET>_<decision time>_fan.png`` in it). Returns the file."""
    if path.is_dir():
        path = path / f"{pred.asset}_{pred.timestamp:%Y%m%dT%H%M}_fan.png"
    from forex_diffusion.data.resample import resample_ohlc
    from forex_diffusion.inference.plots import plot_fan_chart

    recent = resample_ohlc(candles, "5m", asof=pred.timestamp).iloc[-288:]
    return plot_fan_chart(recent, pred, path)
