"""``forex-diffusion data import|info|synth|resample``: the candle store from the command line."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from forex_diffusion.cli.common import DataDirOpt, friendly_errors, load_cli_config
from forex_diffusion.config.sssd_config import DEFAULT_CONFIG_PATH
from forex_diffusion.data.importers import FORMAT_NAMES, ImportReport, import_files
from forex_diffusion.data.importers.reader import format_bad_rows
from forex_diffusion.data.store import AssetInfo, CandleStore
from forex_diffusion.data.synthetic import generate_synthetic_market
from forex_diffusion.errors import DataError
from forex_diffusion.fileio import atomic_write
from forex_diffusion.settings import Settings
from forex_diffusion.timeframes import timeframe_minutes, to_utc

data_app = typer.Typer(
    help="Import, inspect, synthesise and resample candles in the store.", no_args_is_help=True
)

AssetReq = Annotated[str, typer.Option("--asset", "-a", help="Asset symbol, e.g. EURUSD.")]
AssetMaybe = Annotated[
    str | None, typer.Option("--asset", "-a", help="Only this asset (default: all).")
]
StartOpt = Annotated[str | None, typer.Option("--start", help="UTC start, e.g. 2019-01-01.")]
EndOpt = Annotated[str | None, typer.Option("--end", help="UTC end (exclusive).")]


StoreConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config YAML whose paths.data_dir locates the store (default: the packaged "
        "default config).",
    ),
]


def _store(config: Path | None, data_dir: Path | None) -> CandleStore:
    """--data-dir > FOREX_DIFFUSION_DATA_DIR > the config's paths.data_dir > ./data; the config
    is read only when neither of the first two is given."""
    settings = Settings.from_flags(data_dir=data_dir)
    cfg = None if settings.data_dir else load_cli_config(config or DEFAULT_CONFIG_PATH)
    return CandleStore(settings.data_dir_for(cfg))


def _time(value: str | None, option: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        return to_utc(value)
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"invalid {option} {value!r}: use an ISO date or time such as 2019-01-01 or "
            "2019-01-01T12:00 (UTC)"
        ) from exc


@contextmanager
def _store_errors() -> Iterator[None]:
    """File-system failures (permissions, full disk) as one clear message, not a traceback."""
    try:
        yield
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise DataError(
            f"file-system error{where}: {exc.strerror or exc}; check the path, its permissions "
            "and the free space"
        ) from exc


def _console() -> Console:
    """A console that does not truncate tables when the output is a pipe or a file."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


def _required_time(value: str, option: str) -> pd.Timestamp:
    stamp = _time(value, option)
    if stamp is None:  # pragma: no cover - typer always passes a value
        raise DataError(f"{option} is required")
    return stamp


def _fmt(ts: pd.Timestamp | None) -> str:
    return "-" if ts is None else ts.strftime("%Y-%m-%d %H:%M")


def _print_import(report: ImportReport, store: CandleStore, console: Console) -> None:
    table = Table(title=f"Import into {report.asset}")
    for col in (
        "file",
        "format",
        "clock",
        "rows",
        "valid",
        "dup.",
        "bad",
        "first (UTC)",
        "last (UTC)",
    ):
        table.add_column(
            col, justify="right" if col in {"rows", "valid", "dup.", "bad"} else "left"
        )
    for f in report.files:
        table.add_row(
            Path(f.file).name,
            f.format,
            f.tz,
            f"{f.rows_read:,}",
            f"{f.rows_valid:,}",
            f"{f.duplicates:,}",
            f"{f.bad_rows:,}",
            _fmt(f.first),
            _fmt(f.last),
        )
    console.print(table)
    if report.bad_rows:
        console.print(f"[yellow]skipped {len(report.bad_rows):,} bad row(s):[/yellow]")
        console.print(format_bad_rows(report.bad_rows, limit=20), markup=False, highlight=False)
    console.print(
        f"{report.asset}: {report.rows_written:,} new bar(s) written, "
        f"{report.already_stored:,} already stored, {report.duplicates_dropped:,} duplicate(s) "
        f"dropped; the store now holds {report.write.total_bars:,} bars ({store.data_dir})",
        markup=False,
        highlight=False,
    )


@data_app.command("import")
def import_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Files to import (.csv, .gz, .zip).")],
    asset: AssetReq,
    fmt: Annotated[
        str,
        typer.Option("--format", "-f", help=f"auto or one of: {', '.join(FORMAT_NAMES)}."),
    ] = "auto",
    tz: Annotated[
        str | None,
        typer.Option(
            "--tz",
            help="Clock of the file: UTC, histdata, ny-us, ny-eu, UTC+2, or an IANA zone "
            "(America/New_York, Etc/GMT+5). Default: the format's own (HistData: histdata).",
        ),
    ] = None,
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Skip bad rows and list them instead of failing.")
    ] = False,
    columns: Annotated[
        str | None,
        typer.Option(
            "--columns", help="Generic CSV mapping, e.g. time=Date,open=O,high=H,low=L,close=C."
        ),
    ] = None,
    time_format: Annotated[
        str | None,
        typer.Option("--time-format", help="strptime format of the times, e.g. %d/%m/%Y %H:%M."),
    ] = None,
    data_dir: DataDirOpt = None,
    config: StoreConfigOpt = None,
) -> None:
    """Import candle files into the store (merge; idempotent; nothing written on a bad file)."""
    with friendly_errors(), _store_errors():
        store = _store(config, data_dir)
        report = import_files(
            paths,
            asset,
            store,
            fmt=fmt,
            tz=tz,
            skip_bad=skip_bad,
            columns=columns,
            time_format=time_format,
        )
        _print_import(report, store, _console())


def _info_table(infos: list[AssetInfo]) -> Table:
    table = Table(title="Candle store")
    for col in (
        "asset",
        "base",
        "bars",
        "first (UTC)",
        "last (UTC)",
        "gaps > 30 min",
        "closures",
        "kind",
    ):
        table.add_column(
            col, justify="right" if col in {"bars", "gaps > 30 min", "closures"} else "left"
        )
    for i in infos:
        table.add_row(
            i.asset,
            i.base_timeframe,
            f"{i.bars:,}",
            _fmt(i.first),
            _fmt(i.last),
            f"{i.gap_count:,}",
            f"{i.closures:,}",
            "SYNTHETIC" if i.synthetic else "market",
        )
    return table


@data_app.command("info")
def info_cmd(
    asset: AssetMaybe = None,
    data_dir: DataDirOpt = None,
    config: StoreConfigOpt = None,
    show_gaps: Annotated[
        int, typer.Option("--show-gaps", help="With --asset: list up to this many gaps.")
    ] = 20,
) -> None:
    """Bars, first/last bar and weekday gaps over 30 minutes per asset."""
    with friendly_errors(), _store_errors():
        store = _store(config, data_dir)
        names = [asset] if asset else store.assets()
        console = _console()
        if not names:
            console.print(
                f"The candle store at {store.data_dir} is empty. Import data with "
                "`forex-diffusion data import FILE --asset EURUSD` or make a synthetic market "
                "with `forex-diffusion data synth`.",
                markup=False,
            )
            return
        infos = [store.info(n) for n in names]
        console.print(_info_table(infos))
        console.print(
            "gaps: weekday stretches without bars longer than 30 min; closures: weekend and "
            "whole-day holiday closes.",
            markup=False,
            style="dim",
        )
        if asset and infos[0].gaps and show_gaps > 0:
            gaps = Table(title=f"{infos[0].asset}: gaps > 30 min (first {show_gaps})")
            for col in ("from (UTC)", "to (UTC)", "length"):
                gaps.add_column(col)
            for g in infos[0].gaps[:show_gaps]:
                gaps.add_row(_fmt(g.start), _fmt(g.end), str(g.duration))
            console.print(gaps)


@data_app.command("synth")
def synth_cmd(
    asset: Annotated[
        str, typer.Option("--asset", "-a", help="Asset name for the synthetic market.")
    ] = "SYNTH",
    start: Annotated[str, typer.Option("--start", help="UTC start.")] = "2021-01-04",
    end: Annotated[str, typer.Option("--end", help="UTC end (exclusive).")] = "2021-04-05",
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same market).")] = 0,
    data_dir: DataDirOpt = None,
    config: StoreConfigOpt = None,
) -> None:
    """Write a seeded SYNTHETIC 1-minute market (not real prices) into the store."""
    with friendly_errors(), _store_errors():
        t0, t1 = _required_time(start, "--start"), _required_time(end, "--end")
        if t1 <= t0:
            raise DataError(f"--end {end} must be after --start {start}")
        try:
            frame = generate_synthetic_market(t0, t1, seed=seed)
        except ValueError as exc:
            raise DataError(str(exc)) from exc
        store = _store(config, data_dir)
        report = store.write(asset, frame, source=f"synthetic(seed={seed}, {start}..{end})")
        typer.echo(
            f"{report.asset}: wrote {report.rows_added:,} SYNTHETIC 1-minute bars "
            f"({_fmt(frame.index[0])} to {_fmt(frame.index[-1])} UTC, seed {seed}); this is a "
            f"generated market, not real prices. Store: {store.data_dir}"
        )


@data_app.command("resample")
def resample_cmd(
    asset: AssetReq,
    timeframe: Annotated[
        str, typer.Option("--timeframe", "-t", help="5m, 15m, 1h, 4h, ...")
    ] = "1h",
    start: StartOpt = None,
    end: EndOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="CSV file to write (default: stdout).")
    ] = None,
    include_partial: Annotated[
        bool, typer.Option("--include-partial", help="Keep the trailing bar that has not closed.")
    ] = False,
    data_dir: DataDirOpt = None,
    config: StoreConfigOpt = None,
) -> None:
    """Causally resampled bars (label = open time, closed bars only) as CSV."""
    with friendly_errors(), _store_errors():
        try:
            timeframe_minutes(timeframe)
        except ValueError as exc:
            raise DataError(str(exc)) from exc
        store = _store(config, data_dir)
        bars = store.load(
            asset, _time(start, "--start"), _time(end, "--end"), timeframe, include_partial
        )
        frame = bars.copy()
        frame.index = frame.index.strftime("%Y-%m-%dT%H:%M:%SZ")
        frame.index.name = "timestamp"
        if out is None:
            frame.to_csv(sys.stdout)
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, frame.to_csv)
        typer.echo(
            f"{store.info(asset).asset}: wrote {len(frame):,} {timeframe} bars "
            f"({_fmt(bars.index[0])} to {_fmt(bars.index[-1])} UTC) to {out}"
        )
