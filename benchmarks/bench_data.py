"""Candle store benchmark: import, one-month query, one-year resample (SPEC §8: 1 M bars ≤ 5 s).

Runs on the real EURUSD files of ../shared/data/fx (or FOREX_DIFFUSION_SHARED_DATA), pinned to
2 CPU cores where the OS allows it, into a temporary store. Each figure is the median of
``--repeats`` runs; the reference is plain pandas ``read_csv`` (plus slicing / resampling)
measured in the same run. A second table compares the store layout (one Parquet file per
year, as used) with a single file per asset when a year is added to an asset.

A third table times one live bar appended to a store holding a year of 1m bars, by the size of
the store's journal of recent appends (every append rewrites the journal), and the append that
compacts the journal into the year file; the reference is the append to an empty journal.

    python benchmarks/bench_data.py [--repeats 5] [--appends-only]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from forex_diffusion.data.importers import import_files
from forex_diffusion.data.store import COMPACT_ROWS, CandleStore

T = TypeVar("T")
BUDGET_S_PER_MILLION = 5.0
YEARS = (2017, 2018, 2019)
APPENDS = 20  # one-bar appends timed per journal size


def shared_fx_dir() -> Path:
    env = os.environ.get("FOREX_DIFFUSION_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fx"


def median_time(fn: Callable[[], T], repeats: int) -> tuple[float, T]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def pandas_read(paths: list[Path]) -> pd.DataFrame:
    frames = [pd.read_csv(p, parse_dates=["timestamp"], index_col="timestamp") for p in paths]
    return pd.concat(frames) if len(frames) > 1 else frames[0]


def fresh_import(paths: list[Path]) -> Callable[[], int]:
    def run() -> int:
        with tempfile.TemporaryDirectory() as tmp:
            return import_files(paths, "EURUSD", CandleStore(tmp)).rows_written

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--appends-only", action="store_true", help="only the appends table")
    args = parser.parse_args()
    fx = shared_fx_dir()
    paths = [fx / f"EURUSD_M1_{y}.csv.gz" for y in YEARS]
    if not all(p.is_file() for p in paths):
        print(f"bench_data: real data not found under {fx}; set FOREX_DIFFUSION_SHARED_DATA")
        return 0
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 2:
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:2]))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    year = paths[-1]
    n = args.repeats
    if args.appends_only:
        appends_table(year, n)
        return 0
    rows: list[tuple[str, int, float, float]] = []

    t, written = median_time(fresh_import([year]), n)
    ref, _ = median_time(lambda: pandas_read([year]), n)
    rows.append(("import 1 year (2019) CSV.gz -> store", written, t, ref))

    t3, written3 = median_time(fresh_import(paths), n)
    ref3, _ = median_time(lambda: pandas_read(paths), n)
    rows.append(("import 3 years (2017-19) -> store", written3, t3, ref3))

    with tempfile.TemporaryDirectory() as tmp:
        store = CandleStore(tmp)
        import_files([year], "EURUSD", store)
        tq, month = median_time(lambda: store.load("EURUSD", "2019-03-01", "2019-04-01"), n)
        refq, _ = median_time(lambda: pandas_read([year]).loc["2019-03"], n)
        rows.append(("query one month (2019-03), 1m", len(month), tq, refq))

        tr, bars5 = median_time(lambda: store.load("EURUSD", timeframe="5m"), n)

        def pandas_resample() -> pd.DataFrame:
            df = pandas_read([year])
            agg = {"open": "first", "high": "max", "low": "min", "close": "last"}
            return df.resample("5min", label="left", closed="left").agg(agg).dropna()

        refr, _ = median_time(pandas_resample, n)
        rows.append(("load + resample 1 year to 5m", written, tr, refr))
        print(f"(5m bars produced: {len(bars5):,})")

    print(f"\nCandle store benchmark: median of {n} runs, {cores} CPU core(s)\n")
    header = f"{'operation':<40} {'rows':>10} {'median s':>9} {'rows/s':>12} {'pandas s':>9} {'vs pandas':>10}"
    print(header)
    print("-" * len(header))
    for name, count, secs, ref_s in rows:
        print(
            f"{name:<40} {count:>10,} {secs:>9.3f} {count / secs:>12,.0f} {ref_s:>9.3f} "
            f"{ref_s / secs:>9.1f}x"
        )
    per_million = t3 / written3 * 1e6
    verdict = "OK" if per_million <= BUDGET_S_PER_MILLION else "OVER BUDGET"
    print(
        f"\nimport budget (SPEC §8): {per_million:.2f} s per 1 M bars "
        f"(budget {BUDGET_S_PER_MILLION:.0f} s): {verdict}"
    )
    print("'vs pandas' = pandas read_csv reference time / store time (higher is faster);")
    print("the store import also validates every row and writes zstd Parquet atomically.\n")
    layout_table(paths, n)
    appends_table(year, n)
    return 0 if per_million <= BUDGET_S_PER_MILLION else 1


def layout_table(paths: list[Path], repeats: int) -> None:
    """Adding a third year: per-year files (used) vs one file per asset (rewrite everything)."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        per_year_times, single_times = [], []
        for i in range(repeats):
            store = CandleStore(base / f"py{i}")
            import_files(paths[:2], "EURUSD", store)
            t0 = time.perf_counter()
            import_files(paths[2:], "EURUSD", store)
            per_year_times.append(time.perf_counter() - t0)

            single = base / f"single{i}.parquet"
            two = pa.concat_tables([pq.read_table(p) for p in store.info("EURUSD").files[:2]])
            pq.write_table(two, single, compression="zstd", use_dictionary=False)
            t0 = time.perf_counter()
            new = pq.read_table(store.info("EURUSD").files[2])  # the parsed year, as staged
            merged = pa.concat_tables([pq.read_table(single), new]).sort_by("timestamp")
            pq.write_table(merged, single, compression="zstd", use_dictionary=False)
            single_times.append(time.perf_counter() - t0)
        parse_t, _ = median_time(lambda: pandas_read(paths[2:]), 1)
    per_year = statistics.median(per_year_times)
    single_rewrite = statistics.median(single_times)
    print("Store layout when a year is added to a 2-year asset (median):")
    print(f"  one file per year (used): full import of the new year   {per_year:.3f} s")
    print(
        f"  one file per asset: rewrite of all 3 years alone          {single_rewrite:.3f} s "
        "(+ parsing the CSV, not counted)"
    )
    print(f"  (pandas read_csv of that year, for scale:               {parse_t:.3f} s)")


def appends_table(year: Path, repeats: int) -> None:
    """One-bar appends (median of ``APPENDS`` per journal size) and the compacting append
    (median of ``repeats`` fresh stores), each store holding the rest of ``year`` in its year
    file."""
    df = pandas_read([year])
    split = len(df) - COMPACT_ROWS - APPENDS - 1  # the year file; the rest is appended

    def store_with_journal(root: Path, journal: int) -> CandleStore:
        store = CandleStore(root)
        store.write("EURUSD", df.iloc[:split], source="bench")
        if journal:  # a write below the compaction threshold goes to the journal
            store.write("EURUSD", df.iloc[split : split + journal], source="bench")
        return store

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for journal in (0, COMPACT_ROWS // 2, COMPACT_ROWS - APPENDS):
            store = store_with_journal(Path(tmp) / f"j{journal}", journal)
            times = []
            for i in range(split + journal, split + journal + APPENDS):
                t0 = time.perf_counter()
                store.write("EURUSD", df.iloc[i : i + 1], source="live")
                times.append(time.perf_counter() - t0)
            rows.append((f"one bar, journal of {journal:,} bars", statistics.median(times)))
        times = []
        for k in range(repeats):
            store = store_with_journal(Path(tmp) / f"c{k}", COMPACT_ROWS)
            i = split + COMPACT_ROWS
            t0 = time.perf_counter()
            report = store.write("EURUSD", df.iloc[i : i + 1], source="live")
            times.append(time.perf_counter() - t0)
            assert report.files_written and "journal" not in report.files_written[0].name
        rows.append(
            (f"one bar that compacts {COMPACT_ROWS:,} journal bars", statistics.median(times))
        )
    print(f"\nOne live bar appended to a store of {split:,} 1m bars (EURUSD 2019) + its journal:")
    ref = rows[0][1]
    for name, secs in rows:
        print(f"  {name:<44} {secs * 1e3:8.2f} ms  {secs / ref:6.2f}x the empty journal's")


if __name__ == "__main__":
    sys.exit(main())
