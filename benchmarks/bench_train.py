"""Training benchmark (SPEC §5, §8): throughput (samples/s) and peak RSS at the default and
cpu_small sizes, fp32 and bf16 autocast, on the CPU.

Usage:
    .venv/bin/python benchmarks/bench_train.py [--threads 2] [--batches 12] [--sizes default cpu_small]

Each (size, precision) runs in its own process on one year of real EURUSD (2019, read in place
from ../shared/data/fx; a synthetic market without it): DataModule set-up, then Lightning
``fit`` over ``--batches`` training batches (the first two are warm-up). Reports the median
step time over the timed batches, samples/s and the process's peak RSS.
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

FX = Path(
    os.environ.get(
        "FOREX_DIFFUSION_SHARED_DATA",
        Path(__file__).resolve().parents[2] / "shared" / "data" / "fx",
    )
)


def run_one(size: str, precision: str, batches: int, threads: int) -> dict[str, Any]:
    import lightning as L
    import pandas as pd
    import torch

    from forex_diffusion.config.sssd_config import DEFAULT_CONFIG_PATH, load_sssd_config
    from forex_diffusion.data.sssd_dataset import SSSDDataModule
    from forex_diffusion.data.synthetic import generate_synthetic_market
    from forex_diffusion.training.lightning_module import SSSDLightningModule

    torch.set_num_threads(threads)
    path = FX / "EURUSD_M1_2019.csv.gz"
    if path.is_file():
        candles = pd.read_csv(path, parse_dates=["timestamp"], index_col="timestamp")
    else:
        candles = generate_synthetic_market("2019-01-01", "2020-01-01", seed=0)
    cfg = load_sssd_config(
        DEFAULT_CONFIG_PATH,
        preset=None if size == "default" else size,
        overrides=[
            "data.splits.train.start=2019-01-01",
            "data.splits.train.end=2019-09-30",
            "data.splits.val.start=2019-10-07",
            "data.splits.val.end=2019-11-15",
            "data.splits.test.start=2019-11-25",
            "data.splits.test.end=2019-12-31",
        ],
    )
    dm = SSSDDataModule(config=cfg, candles=candles)
    dm.setup("fit")
    module = SSSDLightningModule(cfg, dm.input_dims)
    step_times: list[float] = []

    class Timer(L.Callback):
        def on_train_batch_start(self, *args: Any) -> None:
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, *args: Any) -> None:
            step_times.append(time.perf_counter() - self.t0)

    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=batches,
        limit_val_batches=0,
        precision="bf16-mixed" if precision == "bf16" else "32",
        callbacks=[Timer()],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=dm)
    timed = step_times[2:]
    step = statistics.median(timed)
    return {
        "size": size,
        "precision": precision,
        "params": sum(p.numel() for p in module.parameters()),
        "batch": cfg.training.batch_size,
        "step_ms": step * 1000,
        "samples_s": cfg.training.batch_size / step,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--sizes", nargs="+", default=["default", "cpu_small"])
    parser.add_argument("--precisions", nargs="+", default=["32", "bf16"])
    parser.add_argument("--child", nargs=2, metavar=("SIZE", "PRECISION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child[0], args.child[1], args.batches, args.threads)))
        return
    rows = []
    for size in args.sizes:
        for precision in args.precisions:
            cmd = [
                sys.executable,
                __file__,
                "--child",
                size,
                precision,
                "--batches",
                str(args.batches),
                "--threads",
                str(args.threads),
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(
        f"training benchmark · EURUSD 2019 · torch threads={args.threads} · median of {args.batches - 2} steps"
    )
    print(
        f"{'size':<10} {'precision':<9} {'params':>9} {'batch':>6} {'step ms':>9} {'samples/s':>10} {'vs fp32':>8} {'peak RSS MB':>12}"
    )
    fp32 = {r["size"]: r["samples_s"] for r in rows if r["precision"] == "32"}
    for r in rows:
        ratio = r["samples_s"] / fp32[r["size"]] if r["size"] in fp32 else float("nan")
        print(
            f"{r['size']:<10} {r['precision']:<9} {r['params']:>9,} {r['batch']:>6} {r['step_ms']:>9.0f} "
            f"{r['samples_s']:>10.0f} {ratio:>8.2f} {r['peak_rss_mb']:>12.0f}"
        )


if __name__ == "__main__":
    main()
