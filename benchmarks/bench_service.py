"""HTTP service benchmarks (issue 18), loopback only, bounded in count and time.

Usage:
    .venv/bin/python benchmarks/bench_service.py [--preset cpu_small] [--repeats 30]
        [--clients 16] [--seconds 20] [--max-requests 20000] [--distinct-asof]

A uvicorn server on 127.0.0.1 (a free port) serves a model of the configured size (untrained
weights: latency does not depend on their values; the standardizer is fitted on real EURUSD
Jan–Mar 2019 read in place from ../shared/data/fx). The store starts with its last
``--journal-bars`` 1m bars in its journal of recent appends (default: half the compaction
threshold, the average on a live server; every append rewrites the journal). Measured:

* one client: p50/p95 of ``POST /v1/predict`` from the store (distinct ``asof`` per request, so
  the forecast cache never answers), and of a live update (``POST /v1/bars`` with the next 5m
  bar's 1m candles → the forecast in the response);
* ``--clients`` concurrent clients for ``--seconds``: forecasts/s and p50/p99 latency, with
  dynamic batching and without (a second server); after the first, live updates once more on
  the same server (a live server also answers other clients). Each client asks for the
  forecast of the latest bar (``asof`` omitted), every response a freshly sampled forecast:
  with batching the requests are unseeded and coalesced into batched model calls; without,
  each request carries its own seed, so it is computed alone (the forecast cache of unseeded
  single requests never answers). Both share the prepared features of the latest bar. ``--distinct-asof`` makes the
  clients ask for distinct past decision times instead, so every request builds its features.

``--compile`` adds the one-client figures of a third server started with
``ServiceSettings.compile_sampling`` (``serve --compile``).

The store and the checkpoint are made in a child process, so that the benchmark's process, which
hosts the server, runs PyTorch on the server's threads only, as ``forex-diffusion serve`` does.

Targets on 2 CPU cores at the default size: live update p50 ≤ 25 ms; 16 clients ≥ 40
forecasts/s with p99 ≤ 1 s.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import torch
import uvicorn

from forex_diffusion.config.sssd_config import DEFAULT_CONFIG_PATH, SSSDConfig, load_sssd_config
from forex_diffusion.data.store import COMPACT_ROWS, CandleStore
from forex_diffusion.features.unified_pipeline import unified_feature_pipeline
from forex_diffusion.models.build import build_sssd_model
from forex_diffusion.models.checkpoint import save_checkpoint
from forex_diffusion.service.app import create_app
from forex_diffusion.service.settings import Batching, ServiceSettings

FX = Path(
    os.environ.get(
        "FOREX_DIFFUSION_SHARED_DATA",
        Path(__file__).resolve().parents[2] / "shared" / "data" / "fx",
    )
)
HISTORY_END = pd.Timestamp("2019-03-18", tz="UTC")  # the store ends here; later bars are "live"
HOST = "127.0.0.1"


def build(
    root: Path, preset: str | None, extra: Sequence[str] = (), journal_bars: int = 0
) -> tuple[SSSDConfig, pd.DataFrame]:
    """Store (EURUSD 2019-01-01 .. 03-17, its last ``journal_bars`` 1m bars in the store's
    journal of recent appends, the rest in its year file) and an untrained checkpoint under
    ``root``; returns the config (with the ``extra`` overrides) and the 1m bars after the
    store's end (the live feed)."""
    df = pd.read_csv(FX / "EURUSD_M1_2019.csv.gz", parse_dates=["timestamp"], index_col="timestamp")
    df = df[df.index < pd.Timestamp("2019-04-01", tz="UTC")]
    cfg = load_sssd_config(
        DEFAULT_CONFIG_PATH,
        overrides=[
            f"paths.data_dir={root / 'data'}",
            f"paths.artifacts_dir={root}",
            f"paths.checkpoint_dir={root / 'checkpoints'}",
            "data.splits.train.start=2019-01-01",
            "data.splits.train.end=2019-02-28",
            "data.splits.val.start=2019-03-04",
            "data.splits.val.end=2019-03-15",
            "data.splits.test.start=2019-03-18",
            "data.splits.test.end=2019-03-31",
            "inference.device=cpu",
            *extra,
        ],
        preset=preset,
    )
    history = df[df.index < HISTORY_END]
    store, split = CandleStore(root / "data"), len(history) - journal_bars
    store.write("EURUSD", history.iloc[:split], source="bench")
    if journal_bars:  # a write below the compaction threshold goes to the journal
        store.write("EURUSD", history.iloc[split:], source="bench")
    _, standardizer, names = unified_feature_pipeline(
        history, config=cfg, output_format="multi_timeframe"
    )
    torch.manual_seed(0)
    model = build_sssd_model(cfg, {tf: len(n) for tf, n in names.items()})
    save_checkpoint(
        root / "checkpoints" / "EURUSD" / cfg.model.name / "best.ckpt",
        model,
        cfg,
        names,
        standardizer.to_dict(),
    )
    return cfg, df[df.index >= HISTORY_END]


def build_apart(
    root: Path, preset: str | None, extra: Sequence[str] = (), journal_bars: int = 0
) -> tuple[SSSDConfig, pd.DataFrame]:
    """``build`` in a child process, so that this process, which hosts the server, has run no
    PyTorch operator on any thread but the server's own, as in ``forex-diffusion serve``: a
    thread that runs operators keeps a team of OpenMP threads for the life of the process,
    and one team more than the cores allow slows every small operator of the server's (see
    ``service.torch_thread``)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(build, (root, preset, extra, journal_bars))


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(cfg: SSSDConfig, batching: bool, compile_sampling: bool = False) -> Iterator[str]:
    """A uvicorn server on loopback for the duration of the block; yields its base URL."""
    settings = ServiceSettings(
        config=cfg,
        host=HOST,
        port=free_port(),
        device="cpu",
        batching=Batching(enabled=batching),
        compile_sampling=compile_sampling,
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host=HOST, port=settings.port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    try:
        yield f"http://{HOST}:{settings.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def asof_times(n: int, distinct: int = 1000) -> list[str]:
    """5m closes inside the stored history (Monday 2019-03-11 08:00 on, weekdays), ``distinct``
    of them, repeated in order when ``n`` is larger."""
    start = pd.Timestamp("2019-03-11 08:00", tz="UTC")
    return [(start + pd.Timedelta(minutes=5 * (k % distinct))).isoformat() for k in range(n)]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q * 100)) if values else float("nan")


def one_client(url: str, repeats: int, feed: pd.DataFrame) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"predict": []}
    with httpx.Client(base_url=url, timeout=120) as client:
        client.post("/v1/predict", json={"asset": "EURUSD", "asof": asof_times(1)[0]})  # load
        for t in asof_times(repeats + 1)[1:]:
            started = time.perf_counter()
            r = client.post("/v1/predict", json={"asset": "EURUSD", "asof": t})
            r.raise_for_status()
            out["predict"].append((time.perf_counter() - started) * 1000)
    live_updates(url, feed, 0, 1)  # the first post primes the stream
    out["live"] = live_updates(url, feed, 1, repeats)
    return out


def live_updates(url: str, feed: pd.DataFrame, first: int, count: int) -> list[float]:
    """Milliseconds of the live updates among ``count`` posts of POST /v1/bars with the 1m
    candles of the feed's chunks ``first`` .. ``first + count - 1`` (five 1m bars each): the
    posts answered with a forecast (a chunk whose 5m bar does not close, at a gap in the
    data, is stored without one and not counted)."""
    out: list[float] = []
    with httpx.Client(base_url=url, timeout=120) as client:
        for k in range(first, first + count):
            chunk = feed.iloc[5 * k : 5 * k + 5]
            body = {
                "asset": "EURUSD",
                "candles": [
                    {"timestamp": t.isoformat(), **{c: float(v) for c, v in row.items()}}
                    for t, row in chunk[["open", "high", "low", "close", "volume"]].iterrows()
                ],
            }
            started = time.perf_counter()
            r = client.post("/v1/bars", json=body)
            r.raise_for_status()
            if r.json()["forecasts"]:
                out.append((time.perf_counter() - started) * 1000)
    return out


def load_test(
    url: str, clients: int, seconds: float, max_requests: int, distinct_asof: bool, seeded: bool
) -> dict[str, Any]:
    times = asof_times(max_requests)
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    counter = iter(range(max_requests))
    stop = time.monotonic() + seconds

    def run() -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            while time.monotonic() < stop:
                with lock:
                    k = next(counter, None)
                if k is None:
                    return
                body: dict[str, Any] = {"asset": "EURUSD"}
                if distinct_asof:
                    body["asof"] = times[k]
                if seeded:
                    body["seed"] = k
                started = time.perf_counter()
                r = client.post("/v1/predict", json=body)
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    if r.status_code == 200:
                        latencies.append(elapsed)
                    else:
                        errors[0] += 1

    with httpx.Client(base_url=url, timeout=120) as client:  # load the model first
        client.post("/v1/predict", json={"asset": "EURUSD", "asof": times[0]}).raise_for_status()
    began = time.monotonic()
    threads = [threading.Thread(target=run) for _ in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.monotonic() - began
    return {
        "rps": len(latencies) / wall,
        "p50": pct(latencies, 0.5),
        "p99": pct(latencies, 0.99),
        "n": len(latencies),
        "errors": errors[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default=None, help="e.g. cpu_small (default: default size)")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--max-requests", type=int, default=20_000)
    parser.add_argument(
        "--distinct-asof",
        action="store_true",
        help="load test on distinct past decision times (features built per request)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also the one-client figures of a server started with compiled sampling",
    )
    parser.add_argument("--threads", type=int, default=int(os.environ.get("TORCH_NUM_THREADS", 2)))
    parser.add_argument(
        "--journal-bars",
        type=int,
        default=COMPACT_ROWS // 2,
        help="1m bars in the store's journal when the live feed starts (default: half the "
        "compaction threshold, the journal's average size on a live server; 0: none)",
    )
    parser.add_argument(
        "--no-adaptive",
        action="store_true",
        help="live forecasts without adaptive conformal levels (inference.adaptive_conformal.live)",
    )
    args = parser.parse_args()
    extra = ["inference.adaptive_conformal.live=false"] if args.no_adaptive else []
    torch.set_num_threads(args.threads)
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench_service_") as tmp:
        cfg, feed = build_apart(Path(tmp), args.preset, extra, args.journal_bars)
        with serving(cfg, batching=True) as url:
            single = one_client(url, args.repeats, feed)
            batched = load_test(
                url, args.clients, args.seconds, args.max_requests, args.distinct_asof, False
            )
            # the same server once its clients have come and gone: live updates go on
            after_load = live_updates(url, feed, args.repeats + 1, args.repeats)
        with serving(cfg, batching=False) as url:
            unbatched = load_test(
                url, args.clients, args.seconds, args.max_requests, args.distinct_asof, True
            )
        compiled = None
        if args.compile:  # a fresh store: the live feed starts again where the history ends
            cfg, feed = build_apart(Path(tmp) / "compiled", args.preset, extra, args.journal_bars)
            with serving(cfg, batching=True, compile_sampling=True) as url:
                compiled = one_client(url, args.repeats, feed)
    adaptive = "off" if args.no_adaptive else "on"
    name = (
        f"{cfg.model.name} ({args.preset or 'default size'}, {args.threads} threads, "
        f"live adaptive conformal {adaptive}, {args.journal_bars} bars in the store's journal)"
    )
    singles = [
        ("POST /v1/predict (store)", single["predict"]),
        ("live update", single["live"]),
        ("live update, after the load test", after_load),
    ]
    if compiled is not None:
        singles += [
            ("POST /v1/predict (store), --compile", compiled["predict"]),
            ("live update, --compile", compiled["live"]),
        ]
    for what, values in singles:
        rows.append(
            (
                f"1 client: {what}",
                f"p50 {pct(values, 0.5):7.1f} ms  p95 {pct(values, 0.95):7.1f} ms",
            )
        )
    for label, res in (("batching on", batched), ("batching off", unbatched)):
        rows.append(
            (
                f"{args.clients} clients, {label}",
                f"{res['rps']:6.1f} forecasts/s  p50 {res['p50']:7.1f} ms  p99 {res['p99']:7.1f} ms"
                f"  (n={res['n']}, errors={res['errors']})",
            )
        )
    width = max(len(r[0]) for r in rows)
    print(f"\nservice benchmark: {name}, loopback {HOST}")
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")


if __name__ == "__main__":
    main()
