"""Side-by-side speed benchmark (issue 17): the baseline commit against this checkout.

Usage (``make bench`` runs it with the defaults):
    python benchmarks/bench_speed.py [--threads 2] [--runs 3] [--repeats 15] [--only forecast ...]

The baseline commit is ``$FD_BENCH_BASELINE`` or the one in ``benchmarks/BASELINE``; it is
checked out with ``git worktree`` (``$FD_BENCH_BASELINE_DIR``, default /tmp/fd_baseline, see
``_baseline.py``) and measured by the same ``speed_cases.py`` in a subprocess, alternating with
this checkout ``--runs`` times; every figure is the median over the runs of per-run medians.
The new code's sampler is ``$FD_BENCH_SAMPLER`` / ``$FD_BENCH_STEPS`` (default below); the
baseline keeps the shipped dpmpp_2m with 20 steps. Nothing else should run on the machine.

Each table line: the baseline figure, the new figure, their ratio and the target ratio.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from _baseline import REPO, baseline_commit, ensure_worktree, run_case

NEW_SAMPLER = os.environ.get("FD_BENCH_SAMPLER", "dpmpp_2m_logsnr")
NEW_STEPS = int(os.environ.get("FD_BENCH_STEPS", "10"))
OLD = ["--sampler", "dpmpp_2m", "--steps", "20"]
NEW = ["--sampler", NEW_SAMPLER, "--steps", str(NEW_STEPS)]


@dataclass(frozen=True)
class Line:
    """One table line: what to run for each side and how to turn results into a figure."""

    label: str
    base_args: list[str]
    new_args: list[str]
    figure: Callable[[dict[str, float]], float]
    unit: str
    target: str  # e.g. "<= 0.50" (new / baseline) or ">= 3.00"


@dataclass(frozen=True)
class Table:
    name: str
    lines: list[Line]


def ms(key: str = "ms") -> Callable[[dict[str, float]], float]:
    return lambda r: r[key]


TABLES = {
    "forecast": Table(
        "One forecast from prepared features, default size, 100 samples x 4 horizons",
        [
            Line(
                f"p50: base dpmpp_2m-20 vs new {NEW_SAMPLER}-{NEW_STEPS}",
                ["--case", "forecast", *OLD],
                ["--case", "forecast", *NEW],
                ms(),
                "ms",
                "<= 0.50",
            ),
            Line(
                f"p50: new {NEW_SAMPLER}-{NEW_STEPS}, compile_sampling() + compile_encoder()",
                ["--case", "forecast", *OLD],
                ["--case", "forecast", *NEW, "--compile"],
                ms(),
                "ms",
                "<= 0.50",
            ),
            Line(
                "p50, same sampler dpmpp_2m-20 (per-call overheads only)",
                ["--case", "forecast", *OLD],
                ["--case", "forecast", *OLD],
                ms(),
                "ms",
                "< 1",
            ),
        ],
    ),
    "batch64": Table(
        "A batch of 64 forecasts (prepared features)",
        [
            Line(
                f"base dpmpp_2m-20 vs new {NEW_SAMPLER}-{NEW_STEPS}",
                ["--case", "batch64", *OLD, "--repeats", "5"],
                ["--case", "batch64", *NEW, "--repeats", "5"],
                ms(),
                "ms",
                "<= 0.50",
            ),
            Line(
                f"new {NEW_SAMPLER}-{NEW_STEPS}, compile_sampling() + compile_encoder()",
                ["--case", "batch64", *OLD, "--repeats", "5"],
                ["--case", "batch64", *NEW, "--repeats", "5", "--compile"],
                ms(),
                "ms",
                "<= 0.50",
            ),
            Line(
                "new in a process of the CLI's (keep_freed_memory)",
                ["--case", "batch64", *OLD, "--repeats", "5"],
                ["--case", "batch64", *NEW, "--repeats", "5", "--allocator"],
                ms(),
                "ms",
                "<= 0.50",
            ),
            Line(
                "same, compiled",
                ["--case", "batch64", *OLD, "--repeats", "5"],
                ["--case", "batch64", *NEW, "--repeats", "5", "--allocator", "--compile"],
                ms(),
                "ms",
                "<= 0.50",
            ),
            Line(
                "like for like: keep_freed_memory on both sides",
                ["--case", "batch64", *OLD, "--repeats", "5", "--allocator"],
                ["--case", "batch64", *NEW, "--repeats", "5", "--allocator"],
                ms(),
                "ms",
                "(report)",
            ),
        ],
    ),
    "raw": Table(
        "From raw 1m candles, default size (real EURUSD 2019-Q1), one forecast",
        [
            Line(
                "base: service.predict (features each call) vs new: live windows",
                ["--case", "raw", *OLD],
                ["--case", "raw", *NEW],
                lambda r: r.get("live_ms", r["raw_ms"]),
                "ms",
                "< 1",
            ),
            Line(
                "from candles / prepared features (within each code base)",
                ["--case", "raw", *OLD],
                ["--case", "raw", *NEW],
                lambda r: r.get("live_ms", r["raw_ms"]) / r["prepared_model_ms"],
                "x",
                "new <= 1.5",
            ),
            Line(
                "new 5m bar -> forecast, streaming encoder / prepared (new only)",
                ["--case", "raw", *OLD],
                ["--case", "raw", *NEW],
                lambda r: r.get("stream_ms", math.nan) / r["prepared_model_ms"],
                "x",
                "new <= 1.0",
            ),
        ],
    ),
    "stream": Table(
        "Streaming encoder: one new 5m bar -> context",
        [
            Line(
                "update",
                ["--case", "stream"],
                ["--case", "stream"],
                ms("update_ms"),
                "ms",
                "< 1",
            ),
            Line(
                "full re-encode / update (speed-up, within each code base)",
                ["--case", "stream"],
                ["--case", "stream"],
                lambda r: r["full_ms"] / r["update_ms"],
                "x",
                "new >= 20",
            ),
            Line(
                "update, new with compile_stream()",
                ["--case", "stream"],
                ["--case", "stream", "--compile"],
                ms("update_ms"),
                "ms",
                "< 1",
            ),
            Line(
                "full re-encode / update, new with compile_stream()",
                ["--case", "stream"],
                ["--case", "stream", "--compile"],
                lambda r: r["full_ms"] / r["update_ms"],
                "x",
                "new >= 20",
            ),
        ],
    ),
    "s4d": Table(
        "S4D forward+backward, B=64 L=500 H=128 N=64",
        [
            Line(
                "ours",
                ["--case", "s4d", "--repeats", "7"],
                ["--case", "s4d", "--repeats", "7"],
                ms("ours_ms"),
                "ms",
                "< 1",
            ),
            Line(
                "plain reference / ours (speed-up, within each code base)",
                ["--case", "s4d", "--repeats", "7"],
                ["--case", "s4d", "--repeats", "7"],
                lambda r: r["reference_ms"] / r["ours_ms"],
                "x",
                "new >= 3",
            ),
            Line(
                "same, in a process of the CLI's (keep_freed_memory)",
                ["--case", "s4d", "--repeats", "7", "--allocator"],
                ["--case", "s4d", "--repeats", "7", "--allocator"],
                lambda r: r["reference_ms"] / r["ours_ms"],
                "x",
                "new >= 3",
            ),
        ],
    ),
    "train": Table(
        "Training throughput, cpu_small network, batch 128 (optimizer steps)",
        [
            Line(
                "samples/s",
                ["--case", "train", "--repeats", "7"],
                ["--case", "train", "--repeats", "7"],
                ms("samples_per_s"),
                "samples/s",
                ">= 2.00",
            ),
            Line(
                "samples/s, new in a process of the CLI's (keep_freed_memory)",
                ["--case", "train", "--repeats", "7"],
                ["--case", "train", "--repeats", "7", "--allocator"],
                ms("samples_per_s"),
                "samples/s",
                ">= 2.00",
            ),
        ],
    ),
}


def measure(src: Path, args: list[str], threads: int, repeats: int, clock: str) -> dict[str, float]:
    extra = [] if "--repeats" in args else ["--repeats", str(repeats)]
    return run_case(src, [*args, *extra, "--clock", clock], threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--only", nargs="*", choices=list(TABLES), default=list(TABLES))
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="cpu: process CPU time (indicative figures on a busy machine, use --threads 1)",
    )
    args = parser.parse_args()
    commit = baseline_commit()
    base_root = ensure_worktree(commit)
    print(
        f"bench_speed: baseline {commit[:12]} ({base_root}) vs {REPO} · threads {args.threads} · "
        f"{args.clock} clock · median of {args.runs} alternating runs"
    )
    for key in args.only:
        table = TABLES[key]
        print(f"\n## {table.name}")
        header = (
            f"| {'measure':<64} | {'baseline':>16} | {'new':>16} | {'new/base':>8} "
            f"| {'target':<11} |"
        )
        print(header)
        print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
        cache: dict[tuple[str, ...], list[dict[str, float]]] = {}
        for line in table.lines:
            sides = (("base", base_root, line.base_args), ("new", REPO, line.new_args))
            figures: dict[str, list[float]] = {}
            for side, _, case in sides:
                figures[side] = [line.figure(r) for r in cache.setdefault((side, *case), [])]
            while min(len(f) for f in figures.values()) < args.runs:
                for side, root, case in sides:  # alternating; sides already measured skip
                    if len(figures[side]) < args.runs:
                        result = measure(root, case, args.threads, args.repeats, args.clock)
                        cache[(side, *case)].append(result)
                        figures[side].append(line.figure(result))
            base = statistics.median(figures["base"])
            new = statistics.median(figures["new"])
            ratio = new / base if math.isfinite(new) and math.isfinite(base) else math.nan
            print(
                f"| {line.label:<64} | {fmt(base, line.unit):>16} | {fmt(new, line.unit):>16} "
                f"| {fmt(ratio, ''):>8} | {line.target:<11} |"
            )


def fmt(value: float, unit: str) -> str:
    """``12.34 ms``, or ``n/a`` for a figure the code base does not have."""
    return f"{value:.2f} {unit}".strip() if math.isfinite(value) else "n/a"


if __name__ == "__main__":
    main()
