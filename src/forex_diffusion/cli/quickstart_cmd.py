"""``forex-diffusion quickstart``: the main job end to end on a fresh machine.

1. data: a seeded synthetic market (or the files given with ``--data``) goes into a candle store;
2. train: the ``cpu_small`` preset, briefly, with train/val/test split by date;
3. predict: the forecast table for the latest bar and a fan chart PNG;
4. evaluate: walk-forward on the test range against the baselines, and its first table.

Everything is written under ``--workdir`` (default ``artifacts/quickstart``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from forex_diffusion.cli.common import Locations, friendly_errors, load_cli_config, wide_console
from forex_diffusion.cli.progress import stage, steps
from forex_diffusion.config.presets import DEFAULT_CONFIG_PATH

if TYPE_CHECKING:
    import pandas as pd

    from forex_diffusion.config.sssd_config import SSSDConfig

_SYNTH_START, _SYNTH_END = "2023-01-02", "2023-05-01"


def split_overrides(first: pd.Timestamp, last: pd.Timestamp) -> list[str]:
    """Date splits over [first, last]: ~70 % train, ~12 % val, the rest test (whole days)."""
    import pandas as pd

    days = (last.normalize() - first.normalize()).days
    if days < 30:
        raise typer.BadParameter(f"need at least 30 days of candles for the quickstart, got {days}")
    d0 = first.normalize()
    train_end = d0 + pd.Timedelta(days=int(days * 0.70))
    val_end = d0 + pd.Timedelta(days=int(days * 0.82))
    fmt = "%Y-%m-%d"
    return [
        f"data.splits.train.start={d0:{fmt}}",
        f"data.splits.train.end={train_end:{fmt}}",
        f"data.splits.val.start={train_end + pd.Timedelta(days=1):{fmt}}",
        f"data.splits.val.end={val_end:{fmt}}",
        f"data.splits.test.start={val_end + pd.Timedelta(days=1):{fmt}}",
        f"data.splits.test.end={last.normalize():{fmt}}",
    ]


def quickstart(
    data: Annotated[
        list[Path] | None,
        typer.Option("--data", help="Candle files to import instead of a synthetic market."),
    ] = None,
    asset: Annotated[
        str | None,
        typer.Option("--asset", help="Asset name (default SYNTH, or EURUSD with --data)."),
    ] = None,
    workdir: Annotated[
        Path, typer.Option("--workdir", help="Where the store, models and reports go.")
    ] = Path("artifacts/quickstart"),
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 3,
) -> None:
    """Run data → train → predict → evaluate end to end and print what each step did."""
    from forex_diffusion.cli.predict_cmd import forecast_table, run_prediction, write_fan_chart
    from forex_diffusion.data.importers import import_files
    from forex_diffusion.data.store import CandleStore
    from forex_diffusion.data.synthetic import generate_synthetic_market
    from forex_diffusion.training.train_sssd import train_from_config

    console = wide_console()
    symbol = (asset or ("EURUSD" if data else "SYNTH")).upper()
    paths = [
        f"paths.data_dir={workdir / 'data'}",
        f"paths.artifacts_dir={workdir}",
        f"paths.checkpoint_dir={workdir / 'checkpoints'}",
        f"paths.log_dir={workdir / 'logs'}",
        f"paths.reports_dir={workdir / 'reports'}",
    ]
    with friendly_errors():
        store = CandleStore(workdir / "data")
        console.rule("1/4 data")
        if data:
            with stage(f"importing {len(data)} file(s)"):
                report = import_files(data, symbol, store)
            console.print(
                f"imported {report.rows_written:,} new bars of {symbol} from {len(data)} file(s)"
            )
        elif not store.has(symbol):
            market = generate_synthetic_market(_SYNTH_START, _SYNTH_END, seed=0)
            store.write(symbol, market, source="synthetic quickstart market")
            console.print(f"generated a SYNTHETIC market {symbol}: {len(market):,} one-minute bars")
        info = store.info(symbol)
        console.print(
            f"{symbol}: {info.bars:,} bars from {info.first} to {info.last}, {info.gap_count} weekday gaps > 30 min"
        )

        console.rule("2/4 train (cpu_small preset, brief)")
        cfg = load_cli_config(
            DEFAULT_CONFIG_PATH,
            None,
            [
                *paths,
                *split_overrides(info.first, info.last),
                f"training.epochs={epochs}",
                "model.name=quickstart",
            ],
            asset=symbol,
            preset="cpu_small",
        )
        result = train_from_config(cfg)
        console.print(
            f"trained {symbol}/{cfg.model.name} for {result.epochs_completed} epoch(s) in {result.duration_s:.0f}s; "
            f"best val_loss {result.best_val_loss}; checkpoint {result.best_checkpoint}"
        )
        if result.best_checkpoint is not None:
            from forex_diffusion.cli.calibrate_cmd import calibrate_model, describe

            console.print(
                describe(calibrate_model(cfg, result.best_checkpoint), result.best_checkpoint)
            )

        console.rule("3/4 predict (latest bar)")
        where = Locations(artifacts_dir=workdir)
        pred, _, candles = run_prediction(cfg, symbol, cfg.model.name, None, None, None, where)
        console.print(forecast_table(pred.to_dict()))
        fan = write_fan_chart(candles, pred, workdir / "reports" / "fan.png")
        console.print(f"fan chart written to {fan}")

        console.rule("4/4 evaluate (test range, against baselines)")
        _evaluate(cfg, symbol)


def _evaluate(cfg: SSSDConfig, symbol: str) -> None:
    from forex_diffusion.cli.evaluate_cmd import echo_result
    from forex_diffusion.evaluation.walk_forward import evaluate

    test = cfg.data.splits.test
    # a summary line only: the baselines and the walk-forward draw their own progress bars
    with stage("evaluating (baselines tuned, then walk-forward)", enabled=False):
        result = evaluate(
            cfg,
            symbol,
            str(test.start),
            str(test.end),
            model_name=cfg.model.name,
            out_dir=Path(cfg.paths.reports_dir) / f"{symbol}_test",
            steps=steps,
        )
    echo_result(result)
