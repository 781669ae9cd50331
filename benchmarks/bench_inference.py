"""Inference benchmarks (SPEC §8): end-to-end predict from raw 1m candles, from prepared
features, a cache hit, and predict_batch of 64, at the default and cpu_small sizes.

Usage:
    .venv/bin/python benchmarks/bench_inference.py [--threads 2] [--repeats 15]

Weights are untrained (latency does not depend on their values); the standardizer is fitted
on real EURUSD (Jan–Mar 2019, read in place from ../shared/data/fx) or, without it, on a
synthetic market. Budgets on 2 CPU cores: p50 ≤ 50 ms from prepared features at the default
size, a batch of 64 ≤ 1 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from forex_diffusion.config.sssd_config import DEFAULT_CONFIG_PATH, SSSDConfig, load_sssd_config
from forex_diffusion.data.synthetic import generate_synthetic_market
from forex_diffusion.features.unified_pipeline import unified_feature_pipeline
from forex_diffusion.inference.sssd_inference import SSSDInferenceService
from forex_diffusion.models.build import build_sssd_model

FX = Path(
    os.environ.get(
        "FOREX_DIFFUSION_SHARED_DATA",
        Path(__file__).resolve().parents[2] / "shared" / "data" / "fx",
    )
)


def candles() -> tuple[pd.DataFrame, str]:
    path = FX / "EURUSD_M1_2019.csv.gz"
    if path.is_file():
        df = pd.read_csv(path, parse_dates=["timestamp"], index_col="timestamp")
        return df[df.index < pd.Timestamp("2019-04-01", tz="UTC")], "EURUSD 2019-Q1 (real)"
    return generate_synthetic_market("2019-01-01", "2019-04-01", seed=0), "synthetic"


def timed(fn: Callable[[], object], repeats: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def service_for(cfg: SSSDConfig, df: pd.DataFrame) -> SSSDInferenceService:
    cfg = cfg.with_overrides(
        [
            "data.splits.train.start=2019-01-01",
            "data.splits.train.end=2019-02-28",
            "data.splits.val.start=2019-03-04",
            "data.splits.val.end=2019-03-15",
            "data.splits.test.start=2019-03-18",
            "data.splits.test.end=2019-03-31",
        ]
    )
    _, standardizer, names = unified_feature_pipeline(
        df, config=cfg, output_format="multi_timeframe"
    )
    torch.manual_seed(0)
    model = build_sssd_model(cfg, {tf: len(n) for tf, n in names.items()})
    return SSSDInferenceService(model, cfg, standardizer, device="cpu")


def bench(
    name: str, cfg: SSSDConfig, df: pd.DataFrame, repeats: int
) -> list[tuple[str, str, float, float]]:
    svc = service_for(cfg, df)
    rows = []
    t = pd.Timestamp("2019-03-20 14:35", tz="UTC")
    window = df[df.index < t]
    tail = window[window.index >= t - svc.history_span]
    gens = iter(range(10**6))

    def raw() -> object:  # a generator bypasses the cache: features + model every time
        return svc.predict(tail, generator=torch.Generator().manual_seed(next(gens)))

    ms = timed(raw, repeats)
    rows.append(
        (
            name,
            "predict, raw 1m candles (features incl.)",
            statistics.median(ms),
            float(np.percentile(ms, 95)),
        )
    )
    prepared = svc.build_features(tail)
    ms = timed(lambda: svc.predict_features(prepared, [0]), repeats)
    rows.append(
        (name, "predict, prepared features", statistics.median(ms), float(np.percentile(ms, 95)))
    )
    svc.predict(tail)
    ms = timed(lambda: svc.predict(tail), repeats)
    rows.append((name, "predict, cache hit", statistics.median(ms), float(np.percentile(ms, 95))))
    times = list(pd.date_range("2019-03-18 10:00", periods=64, freq="35min", tz="UTC"))
    ms = timed(lambda: svc.predict_batch(df, decision_times=times), max(3, repeats // 5), warmup=1)
    rows.append(
        (
            name,
            "predict_batch of 64 (features incl.)",
            statistics.median(ms),
            float(np.percentile(ms, 95)),
        )
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    df, source = candles()
    rows = []
    rows += bench("default", load_sssd_config(DEFAULT_CONFIG_PATH), df, args.repeats)
    rows += bench(
        "cpu_small", load_sssd_config(DEFAULT_CONFIG_PATH, preset="cpu_small"), df, args.repeats
    )
    icfg = load_sssd_config(DEFAULT_CONFIG_PATH).inference
    print(
        f"inference benchmark · {source} · torch threads={args.threads} · 100 samples x 4 horizons, "
        f"{icfg.sampler}, {icfg.steps} steps"
    )
    print(f"{'size':<10} {'operation':<42} {'p50 ms':>9} {'p95 ms':>9}")
    for size, op, p50, p95 in rows:
        print(f"{size:<10} {op:<42} {p50:>9.1f} {p95:>9.1f}")
    base = {size: p50 for size, op, p50, _ in rows if op == "predict, prepared features"}
    print(
        f"budget: prepared-features p50 ≤ 50 ms (default: {base['default']:.1f} ms, ratio {base['default'] / 50:.2f})"
    )


if __name__ == "__main__":
    main()
