"""Benchmark: feature pipeline, 12-year dataset construction, DataLoader throughput, peak RSS.

Usage: .venv/bin/python benchmarks/bench_features.py [--runs 3] [--data ../shared/data/fx]

Every measurement runs in a fresh subprocess so that its peak RSS (getrusage ru_maxrss) is
its own. Figures are medians over ``--runs`` runs. Budget (SPEC §8): peak RSS <= 2 GB for
the 12 years of EURUSD.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(
    os.environ.get("FOREX_DIFFUSION_SHARED_DATA", REPO.parent / "shared" / "data" / "fx")
)
CONFIG = REPO / "configs" / "sssd" / "default_config.yaml"
YEARS = range(2012, 2024)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _read_year(data: Path, year: int) -> Any:
    import pandas as pd

    return pd.read_csv(
        data / f"EURUSD_M1_{year}.csv.gz", parse_dates=["timestamp"], index_col="timestamp"
    )


def stage_features(data: Path) -> dict[str, float]:
    """Feature pipeline (multi_timeframe, standardizer fitted) on one year of EURUSD M1."""
    import torch

    from forex_diffusion.config.sssd_config import load_sssd_config
    from forex_diffusion.features.unified_pipeline import unified_feature_pipeline

    torch.set_num_threads(1)
    cfg = load_sssd_config(
        CONFIG,
        overrides=[
            'data.splits.train.start="2019-01-01"',
            'data.splits.train.end="2019-08-31"',
            'data.splits.val.start="2019-09-01"',
            'data.splits.val.end="2019-10-31"',
            'data.splits.test.start="2019-11-01"',
            'data.splits.test.end="2019-12-31"',
        ],
    )
    df = _read_year(data, 2019)
    t0 = time.perf_counter()
    frames, _, _ = unified_feature_pipeline(df, cfg, "multi_timeframe")
    seconds = time.perf_counter() - t0
    return {
        "bars_1m": float(len(df)),
        "rows_5m": float(len(frames["5m"])),
        "seconds": seconds,
        "peak_rss_mb": _rss_mb(),
    }


def stage_dataset(data: Path) -> dict[str, float]:
    """2012-2023 EURUSD: CSV load, SSSDDataModule setup, DataLoader throughput at batch 64."""
    import pandas as pd
    import torch

    from forex_diffusion.config.sssd_config import load_sssd_config
    from forex_diffusion.data.sssd_dataset import SSSDDataModule

    torch.set_num_threads(1)
    cfg = load_sssd_config(CONFIG, overrides=["training.batch_size=64", "data.num_workers=0"])
    t0 = time.perf_counter()
    df = pd.concat([_read_year(data, y) for y in YEARS])
    load_s = time.perf_counter() - t0
    rss_load = _rss_mb()
    t0 = time.perf_counter()
    dm = SSSDDataModule(config=cfg, candles=df)
    del df
    dm.setup("fit")
    build_s = time.perf_counter() - t0
    rss_build = _rss_mb()
    assert dm.train_dataset is not None and dm.val_dataset is not None
    assert dm.test_dataset is not None
    loader = dm.train_dataloader()
    n_batches = 400
    it = iter(loader)
    next(it)  # warm-up
    t0 = time.perf_counter()
    for _ in range(n_batches):
        next(it)
    loader_s = time.perf_counter() - t0
    return {
        "csv_load_s": load_s,
        "setup_s": build_s,
        "batches_per_s": n_batches / loader_s,
        "train": float(len(dm.train_dataset)),
        "val": float(len(dm.val_dataset)),
        "test": float(len(dm.test_dataset)),
        "rss_after_load_mb": rss_load,
        "peak_rss_mb": max(rss_build, _rss_mb()),
    }


def _run_stage(stage: str, data: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--stage", stage, "--data", str(data)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--stage", choices=["features", "dataset"], default=None)
    args = parser.parse_args()
    if args.stage:
        fn = stage_features if args.stage == "features" else stage_dataset
        print(json.dumps(fn(args.data)))
        return
    if not (args.data / "EURUSD_M1_2012.csv.gz").is_file():
        sys.exit(f"EURUSD CSVs not found under {args.data} (pass --data)")
    feats = [_run_stage("features", args.data) for _ in range(args.runs)]
    dsets = [_run_stage("dataset", args.data) for _ in range(args.runs)]
    rows = [
        (
            "feature pipeline, EURUSD 2019 M1 (multi_timeframe)",
            f"{_median(feats, 'seconds'):.2f} s",
            f"{int(feats[0]['bars_1m']):,} 1m bars -> {int(feats[0]['rows_5m']):,} 5m rows",
        ),
        ("  peak RSS (process)", f"{_median(feats, 'peak_rss_mb'):.0f} MB", ""),
        (
            "CSV load, EURUSD 2012-2023 (12 files, pandas)",
            f"{_median(dsets, 'csv_load_s'):.1f} s",
            f"RSS after load {_median(dsets, 'rss_after_load_mb'):.0f} MB",
        ),
        (
            "SSSDDataModule.setup, 2012-2023",
            f"{_median(dsets, 'setup_s'):.1f} s",
            f"train/val/test = {int(dsets[0]['train']):,}/{int(dsets[0]['val']):,}/{int(dsets[0]['test']):,}",
        ),
        (
            "DataLoader train, batch 64, 0 workers",
            f"{_median(dsets, 'batches_per_s'):.0f} batches/s",
            "",
        ),
        (
            "peak RSS, load + construction + loader",
            f"{_median(dsets, 'peak_rss_mb'):.0f} MB",
            "budget 2048 MB",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"bench_features: median of {args.runs} run(s), {os.cpu_count()} CPU(s)")
    print(f"{'measure'.ljust(width)}  {'value':>16}  notes")
    for name, value, note in rows:
        print(f"{name.ljust(width)}  {value:>16}  {note}")


if __name__ == "__main__":
    main()
