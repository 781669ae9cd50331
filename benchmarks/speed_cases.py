"""One speed measurement of the code base on ``PYTHONPATH`` (the baseline or the new one).

Run by ``benchmarks/bench_speed.py`` in a subprocess; prints one JSON object (milliseconds or
samples/s, medians of ``--repeats`` timed calls after warm-up). Only the model API that both code
bases share is used, so the same case measures either. Weights are untrained (latency does not
depend on their values); features are random at the default sizes.

    python benchmarks/speed_cases.py --case forecast --sampler dpmpp_2m --steps 20
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from forex_diffusion.config.sssd_config import DEFAULT_CONFIG_PATH, SSSDConfig, load_sssd_config
from forex_diffusion.models.build import build_sssd_model
from forex_diffusion.models.s4_layer import S4D


def keep_freed_memory() -> None:
    """``forex_diffusion.allocator.keep_freed_memory`` of this checkout, whichever code base is
    measured."""
    path = Path(__file__).resolve().parents[1] / "src" / "forex_diffusion" / "allocator.py"
    spec = importlib.util.spec_from_file_location("_bench_allocator", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not module.keep_freed_memory():
        raise RuntimeError("mallopt refused the thresholds (not glibc?)")


FEATURES_PER_TIMEFRAME = 28  # what the default feature set produces per timeframe


#: the clock of every measurement: wall time, or (``--clock cpu``) the process's CPU time, which
#: a busy shared machine disturbs less (with one thread; it sums the threads' time)
CLOCK: list[Callable[[], float]] = [time.perf_counter]


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    clock = CLOCK[0]
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        times.append((clock() - t0) * 1e3)
    return statistics.median(times)


def model_and_features(config: SSSDConfig, batch: int, extra: int = 0) -> tuple[Any, dict]:
    dims = dict.fromkeys(config.data.timeframes, FEATURES_PER_TIMEFRAME)
    torch.manual_seed(0)
    model = build_sssd_model(config, dims).eval()
    g = torch.Generator().manual_seed(batch)
    feats = {
        tf: torch.randn(batch, config.data.lookbacks[tf] + extra, dims[tf], generator=g)
        for tf in config.data.timeframes
    }
    return model, feats


def case_forecast(args: argparse.Namespace, batch: int) -> dict[str, float]:
    model, feats = model_and_features(load_sssd_config(DEFAULT_CONFIG_PATH), batch)
    if args.compile:
        model.compile_sampling()
        if hasattr(model, "compile_encoder"):
            model.compile_encoder()
    gen = torch.Generator().manual_seed(0)

    def run() -> object:
        return model.inference_forward(feats, 100, args.sampler, args.steps, 0.0, gen)

    return {"ms": median_ms(run, args.repeats, warmup=3 if batch == 1 else 1)}


def case_stream(args: argparse.Namespace) -> dict[str, float]:
    model, grown = model_and_features(load_sssd_config(DEFAULT_CONFIG_PATH), 1, extra=1)
    window = {tf: x[:, :-1] for tf, x in grown.items()}
    grown = {**window, "5m": grown["5m"]}  # only the 5m window gains the new bar
    with torch.inference_mode():
        stream = model.start_stream(window)
        new_bar = grown["5m"][:, -1]

        if args.compile:
            model.compile_stream()

        def update() -> Tensor:
            saved = (dict(stream.summaries), {k: list(v) for k, v in stream.states.items()})
            if hasattr(stream, "advance"):
                ctx = stream.advance([("5m", new_bar)])
            else:
                stream.update("5m", new_bar)
                ctx = stream.context()
            stream.summaries, stream.states = saved
            return ctx

        upd = median_ms(update, args.repeats)
        full = median_ms(lambda: model.encode(grown), args.repeats)
    return {"update_ms": upd, "full_ms": full}


def case_s4d(args: argparse.Namespace) -> dict[str, float]:
    from bench_model import ReferenceS4D

    torch.manual_seed(0)
    ours = S4D(128, 64).train()
    ref = ReferenceS4D(ours)
    u = torch.randn(64, 500, 128, requires_grad=True)  # as inside a network

    def fwd_bwd(layer: torch.nn.Module) -> Callable[[], None]:
        def run() -> None:
            layer.zero_grad(set_to_none=True)
            u.grad = None
            layer(u).square().mean().backward()

        return run

    return {
        "ours_ms": median_ms(fwd_bwd(ours), args.repeats, warmup=2),
        "reference_ms": median_ms(fwd_bwd(ref), args.repeats, warmup=2),
    }


def case_train(args: argparse.Namespace) -> dict[str, float]:
    """Optimiser steps of the cpu_small network (batch 128) on random features and targets."""
    config = load_sssd_config(DEFAULT_CONFIG_PATH, preset="cpu_small")
    batch = config.training.batch_size
    model, feats = model_and_features(config, batch)
    model.train()
    y = torch.randn(batch, len(config.data.horizons), 1, generator=torch.Generator().manual_seed(1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(2)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        model(feats, y, generator=gen).loss.backward()
        opt.step()

    ms = median_ms(step, args.repeats, warmup=2)
    return {"ms": ms, "samples_per_s": batch / ms * 1e3}


def case_raw(args: argparse.Namespace) -> dict[str, float]:
    """One forecast from raw 1m candles at the default size (real EURUSD 2019-Q1 when present).

    Both code bases: ``raw_ms`` = the service's ``predict`` on the history tail (features built
    from the candles on every call), ``prepared_model_ms`` = the model on prepared features.
    Where the code has live windows: ``live_ms`` = push one new 5m bar of 1m candles into them
    (incremental features) and forecast from their windows; ``stream_ms`` = the same with the
    streaming encoder updated by the closed bars instead of a re-encode.
    """
    from bench_inference import candles, service_for

    df, _ = candles()
    svc = service_for(load_sssd_config(DEFAULT_CONFIG_PATH), df)
    t = df.index[df.index >= "2019-03-20 14:35"][0]
    window = df[df.index < t]
    tail = window[window.index >= t - svc.history_span]
    future = df[df.index >= t]
    seeds = iter(range(10**6))
    model, smp, steps = svc.model, args.sampler, args.steps

    def raw() -> object:  # a generator bypasses the cache: features + model every time
        gen = torch.Generator().manual_seed(next(seeds))
        return svc.predict(tail, sampler=smp, steps=steps, generator=gen)

    out = {"raw_ms": median_ms(raw, args.repeats)}
    prepared, _, _ = svc.build_features(tail).get_batch([0])
    gen = torch.Generator().manual_seed(0)

    def prepared_forecast() -> object:
        return model.inference_forward(prepared, 100, smp, steps, 0.0, gen)

    out["prepared_model_ms"] = median_ms(prepared_forecast, args.repeats)
    if not hasattr(svc, "live_windows"):
        return out
    live = svc.live_windows()
    live.push(tail)
    cursor = [0]

    def next_bar() -> list:
        lo = cursor[0]
        cursor[0] += 5
        return live.push(future.iloc[lo : lo + 5])

    def live_forecast() -> object:
        next_bar()
        return model.inference_forward(live.tensors(), 100, smp, steps, 0.0, gen)

    out["live_ms"] = median_ms(live_forecast, args.repeats)
    with torch.inference_mode():
        stream = model.start_stream(live.tensors())

        def stream_forecast() -> object:
            for tf, row in next_bar():
                stream.update(tf, torch.from_numpy(row)[None])
            return model.sample_from_context(stream.context(), 100, smp, steps, 0.0, gen)

        out["stream_ms"] = median_ms(stream_forecast, args.repeats)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--case", required=True, choices=["forecast", "batch64", "stream", "s4d", "train", "raw"]
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--sampler", default="dpmpp_2m")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    parser.add_argument(
        "--allocator",
        action="store_true",
        help="first keep freed memory in the process as the CLI does (this checkout's "
        "forex_diffusion/allocator.py, loaded by path so that the baseline gets the same)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.allocator:
        keep_freed_memory()
    if args.clock == "cpu":
        CLOCK[0] = time.process_time
    cases: dict[str, Callable[[], dict[str, float]]] = {
        "forecast": lambda: case_forecast(args, 1),
        "batch64": lambda: case_forecast(args, 64),
        "stream": lambda: case_stream(args),
        "s4d": lambda: case_s4d(args),
        "train": lambda: case_train(args),
        "raw": lambda: case_raw(args),
    }
    print(json.dumps(cases[args.case]()))


if __name__ == "__main__":
    main()
