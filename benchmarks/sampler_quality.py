"""Sampler quality on a tiny trained model: CRPS and 90 % coverage of few-step samplers against
the shipped dpmpp_2m with 20 steps (issue 17).

Trains the tiny model of ``tests/test_learns_distribution.py`` (a known heteroscedastic
conditional distribution, about a minute on one core), then forecasts 100 test conditions with
each sampler (same starting noise) and scores them against fresh outcomes drawn from the true
distribution. The cpu_small 2023-H2 evaluation is the real check; this one is quick.

    python benchmarks/sampler_quality.py [--samples 400] [--outcomes 50]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from forex_diffusion.forecast import crps_ensemble_fair
from test_learns_distribution import A, _train, sigma

CANDIDATES = [
    ("dpmpp_2m", 20),
    ("dpmpp_2m", 50),
    ("dpmpp_2m", 10),
    ("dpmpp_2m_logsnr", 10),
    ("dpmpp_2m_logsnr", 8),
    ("ddim", 10),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--outcomes", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, data = _train()
    x = data["x"]
    feats = {k[2:]: v for k, v in data.items() if k.startswith("f_")}
    g = torch.Generator().manual_seed(5)
    n = x.shape[0]
    y = (A * x[:, None])[None] + sigma(x)[None] * torch.randn(args.outcomes, n, 4, generator=g)
    y_np = y.numpy()  # (O, N, 4)
    rows = []
    for smp, steps in CANDIDATES:
        fc = model.inference_forward(
            feats, args.samples, smp, steps, 0.0, torch.Generator().manual_seed(9)
        )
        s = fc.samples.numpy()  # (N, 4, S)
        crps = np.mean([crps_ensemble_fair(s, y_np[o]).mean() for o in range(args.outcomes)])
        lo, hi = np.quantile(s, 0.05, axis=-1), np.quantile(s, 0.95, axis=-1)
        cover = float(((y_np >= lo) & (y_np <= hi)).mean())
        rows.append((f"{smp}-{steps}", float(crps), cover))
    ref_crps, ref_cover = rows[0][1], rows[0][2]
    print(f"tiny trained model · {n} conditions × 4 horizons · {args.samples} samples")
    print(f"{'sampler':<14} {'CRPS':>9} {'vs 20-step':>11} {'90% cover':>10} {'Δ points':>9}")
    for name, crps, cover in rows:
        print(
            f"{name:<14} {crps:>9.5f} {crps / ref_crps - 1:>+10.2%} {cover:>10.3f} "
            f"{100 * (cover - ref_cover):>+9.2f}"
        )


if __name__ == "__main__":
    main()
