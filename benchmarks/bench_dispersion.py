"""Where the under-dispersion comes from (issue 16, point 2): two tables.

1. Sample spread against the number of steps for each sampler, with the exact denoiser of a
   unit Gaussian target (std of 100,000 samples; 1.000 is right).
2. E[z²] of the scaled target z = r / (EWMA σ · √(h/5)) per horizon on EURUSD train (2019–2022),
   validation (2023-H1) and test (2023-H2): 1.0 means the scale is right on average; the
   zero-initialised head starts at N(0, 1) in these units.

Usage: python benchmarks/bench_dispersion.py [--fx-dir ../shared/data/fx]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from forex_diffusion.data.resample import resample_ohlc
from forex_diffusion.features.targets import compute_targets
from forex_diffusion.models.diffusion_scheduler import DiffusionScheduler, v_from_eps

HORIZONS = (5, 15, 60, 240)


def exact_unit_gaussian(sch: DiffusionScheduler):
    def model_fn(x: torch.Tensor, i: int, t: int) -> torch.Tensor:
        ab = float(sch.alphas_cumprod[t])
        sa, s1 = math.sqrt(ab), math.sqrt(1 - ab)
        return v_from_eps(s1 * x, x, sa, s1)

    return model_fn


def spread_table() -> None:
    sch = DiffusionScheduler(1000, prediction="v")
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(100_000, generator=g, dtype=torch.float64)
    print("| sampler | 10 steps | 20 steps | 50 steps | 100 steps |")
    print("|---|---:|---:|---:|---:|")
    for sampler in ("ddim", "ddpm", "dpmpp_2m"):
        cells = []
        for steps in (10, 20, 50, 100):
            out = sch.sample(exact_unit_gaussian(sch), x_T, sampler, steps, 0.0, g)  # type: ignore[arg-type]
            cells.append(f"{float(out.std()):.3f}")
        print(f"| {sampler} | " + " | ".join(cells) + " |")


def z2_table(fx_dir: Path) -> None:
    years = range(2019, 2024)
    frames = [
        pd.read_csv(
            fx_dir / f"EURUSD_M1_{y}.csv.gz", parse_dates=["timestamp"], index_col="timestamp"
        )
        for y in years
    ]
    bars = resample_ohlc(pd.concat(frames), "5m")
    close_ns = (bars.index + pd.Timedelta(minutes=5)).as_unit("ns").asi8
    tgt = compute_targets(close_ns, bars["close"].to_numpy(), close_ns[::3], HORIZONS, lam=0.94)
    z2 = tgt.scaled**2
    t = pd.DatetimeIndex(close_ns[::3], tz="UTC")
    ranges = {
        "train 2019-2022": (t < "2023-01-01"),
        "val 2023-H1": (t >= "2023-01-01") & (t < "2023-07-01"),
        "test 2023-H2": (t >= "2023-07-01"),
    }
    print("\n| range | " + " | ".join(f"E[z²] {h} min" for h in HORIZONS) + " |")
    print("|---|" + "---:|" * len(HORIZONS))
    for name, sel in ranges.items():
        cells = [f"{np.nanmean(z2[sel, j]):.2f}" for j in range(len(HORIZONS))]
        print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--fx-dir", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared/data/fx"
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    spread_table()
    if (args.fx_dir / "EURUSD_M1_2019.csv.gz").is_file():
        z2_table(args.fx_dir)
    else:
        print(f"(no real data at {args.fx_dir}: E[z²] table skipped)")


if __name__ == "__main__":
    main()
