"""Command-line start-up and end-to-end latency (issue 23): each figure is the median wall time
of ``--repeats`` runs of the installed console command in a fresh process, with 2 threads,
beside the median CPU time (user + system) of the same runs, which a busy machine inflates
less than the wall time.

    python benchmarks/bench_cli.py [--repeats 5]

Targets: ``forex-diffusion --help`` ≤ 0.5 s; ``data info`` ≤ 1 s, measured twice: with the
store's summary manifest removed before each run (every year file read) and as it is after a
first run; ``data import`` of one real year (EURUSD 2019 from ../shared/data/fx or
FOREX_DIFFUSION_SHARED_DATA) ≤ 3 s; ``predict`` from the store ≤ 3 s, model load and
``inference.forecast_samples`` samples included (a tiny cpu_small model trained once in set-up,
not timed). Each import run writes into a fresh store. A last row, without a target, times
a bare interpreter importing torch and pandas with the console command's collector settings
and exit, in the same run: the floor under any command that forecasts, and a gauge of how
fast the machine is in that window.

The package's modules are compiled to bytecode in set-up, as ``pip install`` does and as Python
does on a first run: where ``PYTHONDONTWRITEBYTECODE`` is set (as on our development machines)
an editable checkout would otherwise be compiled from source on every run.
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import forex_diffusion
from forex_diffusion.cli.main import YOUNG_GENERATION
from forex_diffusion.data.store_info import MANIFEST_FILE

THREADS = "2"
# torch and pandas imported with the console command's collector settings and exit
FLOOR = (
    f"import gc, os; gc.set_threshold({YOUNG_GENERATION}, 20, 20); "
    "import torch, pandas; gc.freeze(); os._exit(0)"
)
YEAR_FILE = "EURUSD_M1_2019.csv.gz"
TINY_TRAINING = [
    "training.epochs=1",
    "training.max_train_batches_per_epoch=4",
    "training.val_forecast_samples=0",
    "data.splits.train.start=2019-01-01",
    "data.splits.train.end=2019-09-30",
    "data.splits.val.start=2019-10-07",
    "data.splits.val.end=2019-11-30",
    "data.splits.test.start=2019-12-07",
    "data.splits.test.end=2019-12-31",
]


def shared_fx_dir() -> Path:
    env = os.environ.get("FOREX_DIFFUSION_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fx"


def command() -> list[str]:
    """The console command beside this interpreter, else ``python -m`` of the CLI."""
    script = Path(sys.executable).with_name("forex-diffusion")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "forex_diffusion.cli.main"]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": THREADS, "TORCH_NUM_THREADS": THREADS}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(args: list[str], cwd: Path, program: list[str] | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of the console command with ``args`` (or of
    ``program`` + ``args``); fails loudly when the command fails."""
    cpu = _children_cpu()
    started = time.perf_counter()
    argv = [*(program or command()), *args]
    done = subprocess.run(argv, cwd=cwd, env=env(), capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return elapsed, _children_cpu() - cpu


def median_of(
    repeats: int,
    args: list[str],
    cwd: Path,
    before: object = None,
    program: list[str] | None = None,
) -> tuple[float, float]:
    """Median (wall, CPU) seconds of ``repeats`` runs, ``before()`` called before each."""
    runs = []
    for _ in range(repeats):
        if callable(before):
            before()
        runs.append(run(args, cwd, program))
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    year = shared_fx_dir() / YEAR_FILE
    if not year.is_file():
        raise SystemExit(f"{year} not found: set FOREX_DIFFUSION_SHARED_DATA")
    compileall.compile_dir(Path(forex_diffusion.__file__).parent, quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store, scratch = root / "data", root / "scratch"
        where = ["--data-dir", str(store)]
        arts = ["--artifacts-dir", str(root / "artifacts")]
        run(["data", "import", str(year), "--asset", "EURUSD", *where], root)
        overrides = [x for o in TINY_TRAINING for x in ("-o", o)]
        run(
            ["train", "--asset", "EURUSD", "--preset", "cpu_small", *overrides, *where, *arts], root
        )

        def clear() -> None:
            shutil.rmtree(scratch, ignore_errors=True)

        def forget_summaries() -> None:
            for manifest in store.glob(f"*/{MANIFEST_FILE}"):
                manifest.unlink()

        info = ["data", "info", *where]
        rows = [
            ("forex-diffusion --help", median_of(args.repeats, ["--help"], root), 0.5),
            (
                "data info (year files read)",
                median_of(args.repeats, info, root, forget_summaries),
                1.0,
            ),
            ("data info (summary manifest)", median_of(args.repeats, info, root), 1.0),
            (
                f"data import {YEAR_FILE}",
                median_of(
                    args.repeats,
                    ["data", "import", str(year), "--asset", "EURUSD", "--data-dir", str(scratch)],
                    root,
                    clear,
                ),
                3.0,
            ),
            (
                "predict (store, model load, 640 samples)",
                median_of(
                    args.repeats,
                    ["predict", "--asset", "EURUSD", "--format", "json", *where, *arts],
                    root,
                ),
                3.0,
            ),
            (
                "reference: import torch, pandas",
                median_of(args.repeats, ["-c", FLOOR], root, None, [sys.executable]),
                None,
            ),
        ]
    print(
        f"median of {args.repeats} runs, {THREADS} threads, fresh process each, "
        "the package compiled to bytecode"
    )
    print(f"{'command':<44} {'seconds':>8} {'cpu s':>8} {'target':>8}  ok")
    for name, (seconds, cpu), target in rows:
        if target is None:
            print(f"{name:<44} {seconds:>8.2f} {cpu:>8.2f}")
            continue
        ok = "yes" if seconds <= target else "NO"
        print(f"{name:<44} {seconds:>8.2f} {cpu:>8.2f} {target:>8.1f}  {ok}")


if __name__ == "__main__":
    main()
