"""``forex-diffusion data import|info|check|synth|resample``: the candle store from the command
line."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from forex_diffusion.cli.common import (
    DataDirOpt,
    Locations,
    friendly_errors,
    load_cli_config,
    wide_console,
)
from forex_diffusion.cli.progress import stage
from forex_diffusion.config.presets import DEFAULT_CONFIG_PATH

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    from forex_diffusion.config.sssd_config import SanityBounds
    from forex_diffusion.data.importers import ImportReport
    from forex_diffusion.data.store import CandleStore, FileHealth
    from forex_diffusion.data.store_info import AssetSummary

# the formats of forex_diffusion.data.importers.FORMAT_NAMES (a test checks they agree),
# written out so that --help does not import the importers
IMPORT_FORMATS = ("tidy", "histdata", "mt4", "mt5", "dukascopy", "generic")

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


def _data_dir(config: Path | None, data_dir: Path | None) -> Path:
    """--data-dir > FOREX_DIFFUSION_DATA_DIR > the config's paths.data_dir > ./data; the
    settings (pydantic) are built only without the flag, and the config is read only when
    neither of the first two is given."""
    if data_dir is not None and str(data_dir) != "":
        return data_dir.expanduser()  # the flag wins (forex_diffusion.settings)
    settings = Locations(data_dir=data_dir).settings()
    cfg = None if settings.data_dir else load_cli_config(config or DEFAULT_CONFIG_PATH)
    return settings.data_dir_for(cfg)


def _store(config: Path | None, data_dir: Path | None) -> CandleStore:
    """The candle store at :func:`_data_dir`."""
    from forex_diffusion.data.store import CandleStore

    return CandleStore(_data_dir(config, data_dir))


def _sanity(config: Path | None) -> SanityBounds | None:
    """The config's asset.sanity bounds (None = the defaults when no config is at hand)."""
    if config is None and not DEFAULT_CONFIG_PATH.is_file():
        return None
    return load_cli_config(config or DEFAULT_CONFIG_PATH).asset.sanity


def _time(value: str | None, option: str) -> pd.Timestamp | None:
    from forex_diffusion.timeinput import parse_utc

    return None if value is None else parse_utc(value, option)


@contextmanager
def _store_errors() -> Iterator[None]:
    """File-system failures (permissions, full disk) as one clear message, not a traceback."""
    from forex_diffusion.errors import DataError

    try:
        yield
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise DataError(
            f"file-system error{where}: {exc.strerror or exc}; check the path, its permissions "
            "and the free space"
        ) from exc


def _required_time(value: str, option: str) -> pd.Timestamp:
    from forex_diffusion.errors import DataError

    stamp = _time(value, option)
    if stamp is None:  # pragma: no cover - typer always passes a value
        raise DataError(f"{option} is required")
    return stamp


def _fmt(ts: pd.Timestamp | datetime | None) -> str:
    return "-" if ts is None else ts.strftime("%Y-%m-%d %H:%M")


def _duration(delta: timedelta) -> str:
    """A gap's length as pandas writes a Timedelta: ``0 days 01:05:00``."""
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86_400)
    return f"{days} days {rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"


def _print_import(report: ImportReport, store: CandleStore, console: Console) -> None:
    from rich.table import Table

    from forex_diffusion.data.importers.reader import format_bad_rows

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
    if report.conflicts:
        outcome = (
            f"{report.replaced:,} stored bar(s) replaced (changed)"
            if report.replaced
            else "kept as stored / first copy"
        )
        console.print(
            f"{report.conflicts:,} conflicting bar(s) (same time, different values): {outcome}",
            markup=False,
            highlight=False,
        )
    if report.write.temporaries_removed:
        console.print(
            f"removed {report.write.temporaries_removed} stale temporary file(s) of an "
            "interrupted write",
            markup=False,
            highlight=False,
        )


@data_app.command("import")
def import_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Files to import (.csv, .gz, .zip).")],
    asset: AssetReq,
    fmt: Annotated[
        str,
        typer.Option("--format", "-f", help=f"auto or one of: {', '.join(IMPORT_FORMATS)}."),
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
    on_conflict: Annotated[
        str,
        typer.Option(
            "--on-conflict",
            help="Bars with a stored (or repeated) time but different values: error (default), "
            "keep (the stored / first copy stays) or replace (the new values win; rewritten "
            "atomically).",
        ),
    ] = "error",
    data_dir: DataDirOpt = None,
    config: StoreConfigOpt = None,
) -> None:
    """Import candle files into the store (merge; idempotent; nothing written on a bad file)."""
    from forex_diffusion.data.importers import import_files
    from forex_diffusion.data.store import ON_CONFLICT_CHOICES, OnConflict
    from forex_diffusion.errors import DataError

    with friendly_errors(), _store_errors():
        if on_conflict not in ON_CONFLICT_CHOICES:
            raise DataError(
                f"--on-conflict {on_conflict!r}: use one of {', '.join(ON_CONFLICT_CHOICES)}"
            )
        store = _store(config, data_dir)
        sanity = _sanity(config)
        with stage(f"importing {len(paths)} file(s) into {asset.upper()}"):
            report = import_files(
                paths,
                asset,
                store,
                fmt=fmt,
                tz=tz,
                skip_bad=skip_bad,
                columns=columns,
                time_format=time_format,
                on_conflict=cast(OnConflict, on_conflict),
                sanity=sanity,
            )
        _print_import(report, store, wide_console())


def _info_table(infos: list[AssetSummary]) -> Table:
    from rich.table import Table

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
    from rich.table import Table

    from forex_diffusion.data.store_info import asset_names, summarize_asset
    from forex_diffusion.errors import DataError

    with friendly_errors(), _store_errors():
        root = _data_dir(config, data_dir)
        names = [asset] if asset else asset_names(root)
        console = wide_console()
        if not names:
            console.print(
                f"The candle store at {root} is empty. Import data with "
                "`forex-diffusion data import FILE --asset EURUSD` or make a synthetic market "
                "with `forex-diffusion data synth`.",
                markup=False,
            )
            return
        infos: list[AssetSummary] = []
        damaged: dict[str, list[FileHealth]] = {}
        for n in names:
            try:
                infos.append(summarize_asset(root, n))
            except DataError:
                from forex_diffusion.data.store import CandleStore

                damaged[n] = CandleStore(root).check(n)
        if infos:
            console.print(_info_table(infos))
        if damaged:
            _print_health([h for hs in damaged.values() for h in hs], console)
            raise DataError(
                "damaged candle files:\n"
                + "\n".join(f"  {h.problem}" for hs in damaged.values() for h in hs if not h.ok)
            )
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
            for start, end in infos[0].gaps[:show_gaps]:
                gaps.add_row(_fmt(start), _fmt(end), _duration(end - start))
            console.print(gaps)


def _print_health(health: list[FileHealth], console: Console) -> None:
    from rich.table import Table

    table = Table(title="Stored files")
    for col in ("asset", "file", "bars", "status"):
        table.add_column(col, justify="right" if col == "bars" else "left", overflow="fold")
    for h in health:
        table.add_row(
            h.asset,
            h.path.name,
            "-" if h.rows is None else f"{h.rows:,}",
            f"DAMAGED: {h.problem}" if not h.ok else (h.note or "ok"),
        )
    console.print(table)


@data_app.command("check")
def check_cmd(
    asset: AssetMaybe = None,
    data_dir: DataDirOpt = None,
    config: StoreConfigOpt = None,
) -> None:
    """Verify every stored file (readable Parquet, ordered bars of its year, valid OHLC).

    Exit code 2 when a file is damaged (each is named, with what to do)."""
    from forex_diffusion.errors import DataError

    with friendly_errors(), _store_errors():
        store = _store(config, data_dir)
        names = [asset] if asset else store.assets()
        health = [h for n in names for h in store.check(n)]
        console = wide_console()
        if not health:
            console.print(f"No stored files to check in {store.data_dir}.", markup=False)
            return
        _print_health(health, console)
        bad = [h for h in health if not h.ok]
        if bad:
            raise DataError(
                f"{len(bad)} of {len(health)} file(s) damaged:\n"
                + "\n".join(f"  {h.problem}" for h in bad)
            )
        console.print(f"all {len(health)} file(s) ok", markup=False)


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
    from forex_diffusion.data.synthetic import generate_synthetic_market
    from forex_diffusion.errors import DataError

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
    from forex_diffusion.errors import DataError
    from forex_diffusion.fileio import atomic_write
    from forex_diffusion.timeframes import timeframe_minutes

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
