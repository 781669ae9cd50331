"""train-many benchmark: wall time of 4 synthetic assets at 1 vs 2 parallel workers on a local
Ray, and, with ``--gpu`` on a CUDA machine, one job per GPU against four jobs packed on one GPU
(``gpus_per_job`` 1 vs 0.25).

Each configuration starts its own local Ray (the start-up is part of the wall time, as for the
command) and trains every asset from scratch into a fresh registry. On a machine shared with
other work the figures say little; run it on an idle one.

    python benchmarks/bench_scale.py [--size small|full] [--assets 4] [--gpu]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from forex_diffusion.config.sssd_config import DEFAULT_CONFIG_PATH, load_sssd_config
from forex_diffusion.data.store import CandleStore
from forex_diffusion.data.synthetic import generate_synthetic_market
from forex_diffusion.scale.cluster import ClusterRequest
from forex_diffusion.scale.jobs import TrainJob
from forex_diffusion.scale.train_many import train_many

SIZES = {
    "small": ["training.epochs=1", "training.max_train_batches_per_epoch=4"],
    "full": ["training.epochs=3", "training.max_train_batches_per_epoch=40"],
}
TINY = [
    "data.lookbacks={5m: 48, 15m: 16, 1h: 8, 4h: 4}",
    "data.decision_stride=12",
    "model.encoder.d_model=16",
    "model.encoder.n_layers=1",
    "model.encoder.state_dim=8",
    "model.encoder.attention_heads=2",
    "model.encoder.context_dim=32",
    "model.horizon_embedding_dim=8",
    "model.head.hidden_dim=32",
    "model.head.n_blocks=2",
    "model.head.timestep_embedding_dim=16",
    "training.batch_size=32",
    "training.val_forecast_samples=8",
    "training.precision=32",
    "training.checkpoint={every_n_epochs: 1, keep_best_only: true}",
    "inference.steps=5",
    "data.splits.train.start=2021-01-04",
    "data.splits.train.end=2021-01-29",
    "data.splits.val.start=2021-02-02",
    "data.splits.val.end=2021-02-12",
    "data.splits.test.start=2021-02-16",
    "data.splits.test.end=2021-02-19",
]


def _jobs(root: Path, assets: list[str], size: str, run: str) -> list[TrainJob]:
    jobs = []
    for asset in assets:
        cfg = load_sssd_config(
            DEFAULT_CONFIG_PATH,
            overrides=[
                *TINY,
                *SIZES[size],
                f"asset.symbol={asset}",
                "asset.pip_size=0.0001",
                f"paths.data_dir={root / 'data'}",
                f"paths.artifacts_dir={root / run}",
                f"paths.checkpoint_dir={root / run / 'checkpoints'}",
                f"paths.log_dir={root / run / 'logs'}",
            ],
            preset="cpu_small",
        )
        jobs.append(TrainJob.from_config(cfg, data_dir=str(root / "data")))
    return jobs


def _time(root: Path, assets: list[str], size: str, name: str, request: ClusterRequest) -> float:
    jobs = _jobs(root, assets, size, name)
    started = time.perf_counter()
    outcomes = train_many(jobs, request, f"sqlite:///{root / name / 'registry.db'}")
    elapsed = time.perf_counter() - started
    bad = [o for o in outcomes if o.status != "completed"]
    if bad:
        raise SystemExit(f"{name}: jobs did not complete: {bad}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--assets", type=int, default=4)
    parser.add_argument("--gpu", action="store_true", help="also compare GPU packing")
    args = parser.parse_args()
    assets = [f"SYN{i:03d}" for i in range(args.assets)]
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        root = Path(tmp)
        store = CandleStore(root / "data")
        for i, asset in enumerate(assets):
            store.write(
                asset, generate_synthetic_market("2021-01-01", "2021-02-20", seed=i), "synthetic"
            )
        rows = []
        for workers in (1, 2):
            request = ClusterRequest(cpus_per_job=1, max_parallel=workers)
            rows.append(
                (
                    f"{workers} worker(s), CPU",
                    _time(root, assets, args.size, f"w{workers}", request),
                )
            )
        if args.gpu:
            import torch

            if not torch.cuda.is_available():
                raise SystemExit("--gpu: no CUDA device")
            for share in (1.0, 0.25):
                request = ClusterRequest(cpus_per_job=1, gpus_per_job=share)
                rows.append(
                    (f"gpus_per_job={share}", _time(root, assets, args.size, f"g{share}", request))
                )
    print(f"train-many, {len(assets)} synthetic assets, size={args.size}", file=sys.stderr)
    print(f"{'configuration':<28}{'wall s':>10}")
    for name, seconds in rows:
        print(f"{name:<28}{seconds:>10.1f}")


if __name__ == "__main__":
    main()
