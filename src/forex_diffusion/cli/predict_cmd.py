"""``forex-diffusion predict``: the forecast for the latest bar or ``--asof`` as a table, JSON or
CSV (all rendered from the one ``SSSDPrediction`` JSON schema), and a fan chart.

stdout carries only the forecast; messages (log lines, "fan chart written to ...") go to stderr.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from forex_diffusion.cli.common import (
    ArtifactsDirOpt,
    ConfigOpt,
    DataDirOpt,
    DbUrlOpt,
    Locations,
    OverrideOpt,
    friendly_errors,
    load_cli_config,
    wide_console,
)
from forex_diffusion.config.presets import DEFAULT_CONFIG_PATH

if TYPE_CHECKING:
    import pandas as pd
    from rich.table import Table

    from forex_diffusion.config.sssd_config import SSSDConfig
    from forex_diffusion.inference.prediction import SSSDPrediction
    from forex_diffusion.inference.sssd_inference import SSSDInferenceService

FORMATS = ("table", "json", "csv")
CONFIDENCE_NOTE = (
    "prob_up = P(close(t+h) > close(t)); confidence = P(the more likely direction) = "
    "max(prob_up, 1 - prob_up); direction is up/down when confidence >= {threshold:.0%}, else "
    "neutral. q05/q50/q95 are price levels; ± are Monte-Carlo standard errors."
)


def forecast_table(data: dict[str, Any]) -> Table:
    """The table of a prediction's JSON dict (``SSSDPrediction.to_dict``): per horizon the
    mean ± std in pips, q05/q50/q95 as price levels, prob_up, direction and confidence, with
    the Monte-Carlo standard errors beside them, and what was served (model, fallback or pool)
    with the model card's sentence below."""
    from rich.table import Table

    from forex_diffusion.inference.prediction import horizon_rows

    rows = horizon_rows(data)
    pip = data["pip_size"]
    table = Table(
        title=f"{data['asset']} at {data['timestamp'][:16].replace('T', ' ')} UTC · "
        f"last close {data['last_close']:.5f}"
    )
    for col in (
        "horizon",
        "mean ± std (pips)",
        "q05 (price)",
        "q50 (price)",
        "q95 (price)",
        "prob_up",
        "direction",
        "confidence",
        "source",
    ):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            f"{r['horizon_min']} min",
            f"{r['mean_pips']:+.1f} ± {r['std_pips']:.1f}",
            f"{r['q05_level']:.5f} ±{r['q05_change_se'] / pip:.1f}p",
            f"{r['q50_level']:.5f} ±{r['q50_change_se'] / pip:.1f}p",
            f"{r['q95_level']:.5f} ±{r['q95_change_se'] / pip:.1f}p",
            f"{r['prob_up']:.1%} ± {r['prob_up_se']:.1%}",
            r["direction"],
            f"{r['confidence']:.1%}",
            r["source"],
        )
    seed = "no seed (fresh noise)" if data["seed"] is None else f"seed {data['seed']}"
    table.caption = (
        f"{data['model_name']} · {data['num_samples']} samples · {seed} · "
        f"{data['inference_time_ms']:.0f} ms\n"
        + CONFIDENCE_NOTE.format(threshold=data["direction_threshold"])
        + "".join(
            f"\n{r['horizon_min']} min: {r['card_statement']}" for r in rows if r["card_statement"]
        )
    )
    return table


def forecast_csv(data: dict[str, Any]) -> str:
    """One CSV row per horizon of a prediction's JSON dict (columns of ``horizon_rows``)."""
    from forex_diffusion.inference.prediction import horizon_rows

    rows = horizon_rows(data)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


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
            help="Samples per forecast (default inference.forecast_samples: prob_up's "
            "Monte-Carlo standard error at most 2 points).",
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            min=0,
            help="Seed of the sampling noise: the same seed gives the same forecast "
            "(default inference.seed; none = fresh noise, standard errors shown).",
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, json or csv.")] = "table",
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
    artifacts_dir: ArtifactsDirOpt = None,
    db_url: DbUrlOpt = None,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    override: OverrideOpt = None,
) -> None:
    """Forecast the next 5/15/60/240 minutes for an asset from the candle store."""
    if fmt not in FORMATS:
        raise typer.BadParameter(f"--format must be one of {', '.join(FORMATS)}")
    where = Locations(data_dir, artifacts_dir, db_url)
    with friendly_errors():
        from forex_diffusion.timeinput import parse_utc

        when = parse_utc(asof, "--asof") if asof is not None else None
        check_plot_path(plot)
        cfg = load_cli_config(config, None, override, where=where)
        pred, _, candles = run_prediction(
            cfg, asset, model, when, samples, checkpoint_dir, where, seed, allow_stale
        )
        written = write_fan_chart(candles, pred, plot) if plot is not None else None
    data = pred.to_dict()
    if fmt == "json":
        typer.echo(json.dumps(data, indent=2))
    elif fmt == "csv":
        typer.echo(forecast_csv(data), nl=False)
    else:
        wide_console().print(forecast_table(data))
    if written is not None:
        typer.echo(f"fan chart written to {written}", err=True)


def check_plot_path(plot: Path | None) -> None:
    """Refuse a ``--plot`` that is neither an existing folder nor a ``.png`` file path, before
    any work."""
    from forex_diffusion.errors import DataError

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
    where: Locations | None = None,
    seed: int | None = None,
    allow_stale: bool = False,
) -> tuple[SSSDPrediction, SSSDInferenceService, pd.DataFrame]:
    """Load the service and the candles it needs from the store, and forecast (``samples``
    None = ``inference.forecast_samples``; ``seed`` None = ``inference.seed``; the device is
    ``inference.device``; the registry and the store are those ``where`` names).

    With ``asof`` after the store's latest bar by more than ``inference.max_staleness_minutes``
    the forecast is refused (DataError saying how old the bar is) unless ``allow_stale``."""
    import pandas as pd

    from forex_diffusion.data.store import CandleStore
    from forex_diffusion.inference.sssd_inference import load_sssd_inference_service
    from forex_diffusion.timeframes import timeframe_minutes
    from forex_diffusion.timeinput import parse_utc

    where = where or Locations()
    end = parse_utc(asof, "--asof") if asof is not None else None
    service = load_sssd_inference_service(
        asset,
        checkpoint_dir=checkpoint_dir,
        model_name=model,
        config=cfg,
        registry=where.registry(cfg),
    )
    store = CandleStore(where.settings().data_dir_for(cfg))
    latest = store.last_bar(asset.upper())
    latest_close = latest + pd.Timedelta(minutes=timeframe_minutes(store.base_timeframe(asset)))
    if end is not None and end > latest_close:
        if not allow_stale:
            service.check_staleness(end, latest_close)
        end = latest_close  # the store ends before asof: its latest bars are all there is
    last = end if end is not None else latest_close
    candles = store.load(asset.upper(), start=last - service.history_span, end=end)
    n = service.config.inference.forecast_samples if samples is None else samples
    pred = service.predict(candles, num_samples=n, asof=end, allow_stale=allow_stale, seed=seed)
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
