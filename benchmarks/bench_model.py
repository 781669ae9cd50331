"""Model benchmarks (SPEC §8): S4D layer vs a plain reference, forecast latency, streaming.

Usage:
    .venv/bin/python benchmarks/bench_model.py [--threads 2] [--repeats 30] [--device cpu]
        [--override model.head.hidden_dim=64 ...]

Prints a table of medians (and p95 for the single forecast). Budgets on 2 CPU cores: one forecast
(100 samples × 4 horizons, 20 steps) p50 ≤ 50 ms, a batch of 64 forecasts ≤ 1 s.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from forex_diffusion.config.sssd_config import load_sssd_config
from forex_diffusion.models.build import build_sssd_model
from forex_diffusion.models.s4_layer import S4D

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "sssd" / "default_config.yaml"
FEATURES_PER_TIMEFRAME = 28  # what the default feature set produces per timeframe


class ReferenceS4D(nn.Module):
    """Plain S4D for comparison: complex exponentials for every (channel, mode, lag), no cache."""

    def __init__(self, layer: S4D) -> None:
        super().__init__()
        self.log_dt = nn.Parameter(layer.log_dt.detach().clone())
        self.log_A_real = nn.Parameter(layer.log_A_real.detach().clone())
        self.A_imag = nn.Parameter(layer.A_imag.detach().clone())
        self.C = nn.Parameter(layer.C.detach().clone())
        self.D = nn.Parameter(layer.D.detach().clone())

    def kernel(self, length: int) -> Tensor:
        dt = torch.exp(self.log_dt)[:, None]
        a = torch.complex(-torch.exp(self.log_A_real), self.A_imag)
        c = torch.view_as_complex(self.C.contiguous())
        dta = dt * a
        b_bar = (torch.exp(dta) - 1) / a
        powers = torch.exp(dta[..., None] * torch.arange(length, device=dta.device))
        return 2 * (c[..., None] * b_bar[..., None] * powers).sum(1).real  # (H, L)

    def forward(self, u: Tensor) -> Tensor:
        length = u.shape[1]
        k = self.kernel(length)
        n = 2 * length
        x = u.transpose(1, 2)
        y = torch.fft.irfft(torch.fft.rfft(x, n=n) * torch.fft.rfft(k, n=n), n=n)[..., :length]
        return (y + self.D[:, None] * x).transpose(1, 2)


def timed(fn: Callable[[], object], repeats: int, warmup: int = 2, sync=None) -> list[float]:
    """Wall times in ms of ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        if sync:
            sync()
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def bench_s4d(device: torch.device, repeats: int, sync) -> list[tuple[str, float, float]]:
    torch.manual_seed(0)
    b, length, h, n = 64, 500, 128, 64
    ours = S4D(h, n).to(device)
    ref = ReferenceS4D(ours).to(device)
    u = torch.randn(b, length, h, device=device)
    with torch.no_grad():
        err = float((ours(u) - ref(u)).abs().max())
    assert err < 1e-3, f"reference and S4D disagree by {err}"
    rows = []

    def fwd(layer: nn.Module) -> Callable[[], object]:
        return lambda: layer(u)

    def fwd_bwd(layer: nn.Module) -> Callable[[], object]:
        def run() -> None:
            layer.zero_grad(set_to_none=True)
            layer(u).square().mean().backward()

        return run

    for label, make in (("forward (train mode)", fwd), ("forward+backward", fwd_bwd)):
        ours.train()
        t_ours = statistics.median(timed(make(ours), repeats, sync=sync))
        t_ref = statistics.median(timed(make(ref), repeats, sync=sync))
        rows.append((f"S4D {label} B64 L500 H128 N64", t_ours, t_ref))
    ours.eval()
    with torch.inference_mode():
        t_ours = statistics.median(timed(lambda: ours(u), repeats, sync=sync))
        t_ref = statistics.median(timed(lambda: ref(u), repeats, sync=sync))
    rows.append(("S4D inference (cached kernel)", t_ours, t_ref))
    k_ours = statistics.median(timed(lambda: ours.kernel(length), repeats, sync=sync))
    k_ref = statistics.median(timed(lambda: ref.kernel(length), repeats, sync=sync))
    rows.append(("S4D kernel only (H128 N64 L500)", k_ours, k_ref))

    def kernel_bwd(layer: nn.Module) -> Callable[[], object]:
        def run() -> None:
            layer.zero_grad(set_to_none=True)
            layer.kernel(length).square().sum().backward()

        return run

    k_ours = statistics.median(timed(kernel_bwd(ours), repeats, sync=sync))
    k_ref = statistics.median(timed(kernel_bwd(ref), repeats, sync=sync))
    rows.append(("S4D kernel forward+backward", k_ours, k_ref))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--override", nargs="*", default=[])
    parser.add_argument("--skip-s4d", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    print(
        f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
        f"repeats {args.repeats}, overrides {args.override}"
    )

    if not args.skip_s4d:
        print("\n| S4D layer | ours ms | reference ms | speed-up |\n|---|---:|---:|---:|")
        for name, ours, ref in bench_s4d(device, max(5, args.repeats // 3), sync):
            ratio = ref / ours
            print(f"| {name} | {ours:.2f} | {ref:.2f} | {ratio:.2f}x |")

    config = load_sssd_config(DEFAULT_CONFIG, overrides=args.override)
    dims = dict.fromkeys(config.data.timeframes, FEATURES_PER_TIMEFRAME)
    torch.manual_seed(0)
    model = build_sssd_model(config, dims).to(device).eval()
    n_params = sum(p.numel() for p in model.parameters())

    def features(batch: int, extra: int = 0) -> dict[str, Tensor]:
        g = torch.Generator().manual_seed(batch)
        return {
            tf: torch.randn(batch, config.data.lookbacks[tf] + extra, dims[tf], generator=g).to(
                device
            )
            for tf in config.data.timeframes
        }

    one, many = features(1), features(64)
    gen = torch.Generator(device=device).manual_seed(0)
    rows: list[tuple[str, str]] = []
    icfg = config.inference
    for sampler, steps in (("ddim", 20), ("dpmpp_2m", 20), (icfg.sampler, icfg.steps)):
        times = timed(
            lambda s=sampler, k=steps: model.inference_forward(one, 100, s, k, 0.0, gen),
            args.repeats,
            warmup=3,
            sync=sync,
        )
        rows.append(
            (
                f"one forecast, {sampler} {steps} steps, 100 samples × 4 horizons",
                f"p50 {pct(times, 0.5):.1f} / p95 {pct(times, 0.95):.1f} / min {min(times):.1f}",
            )
        )
    with torch.inference_mode():
        context = model.encode(one)
        enc = timed(lambda: model.encode(one), args.repeats, sync=sync)
        head = timed(
            lambda: model.sample_from_context(context, 100, "ddim", 20, 0.0, gen),
            args.repeats,
            sync=sync,
        )
    rows.append(("  of which encoder (4 timeframes)", f"p50 {pct(enc, 0.5):.1f}"))
    rows.append(("  of which sampling (20 head calls)", f"p50 {pct(head, 0.5):.1f}"))
    batch_times = timed(
        lambda: model.inference_forward(many, 100, "ddim", 20, 0.0, gen),
        max(3, args.repeats // 6),
        warmup=1,
        sync=sync,
    )
    rows.append(
        (
            "batch of 64 forecasts, ddim 20",
            f"p50 {pct(batch_times, 0.5):.1f} / min {min(batch_times):.1f}",
        )
    )

    grown = features(1, extra=1)
    window = {tf: x[:, :-1] for tf, x in grown.items()}
    grown = {**window, "5m": grown["5m"]}  # only the 5m window gains the new bar
    with torch.inference_mode():
        stream = model.start_stream(window)
        new_bar = grown["5m"][:, -1]

        def stream_update() -> Tensor:
            # one new 5m bar: the stream's states advance by one step, windows are not recomputed
            saved = (dict(stream.summaries), {k: list(v) for k, v in stream.states.items()})
            stream.update("5m", new_bar)
            ctx = stream.context()
            stream.summaries, stream.states = saved
            return ctx

        upd = timed(stream_update, args.repeats, sync=sync)
        full = timed(lambda: model.encode(grown), args.repeats, sync=sync)
        drift = float((stream_update() - model.encode(grown)).abs().max())
    rows.append(("streaming: one new 5m bar → context", f"p50 {pct(upd, 0.5):.2f}"))
    rows.append(("full encoder recompute (same bar)", f"p50 {pct(full, 0.5):.2f}"))
    rows.append(("  max |stream - recompute| (grown window)", f"{drift:.2e}"))

    print(f"\nmodel: {n_params:,} parameters; feature dims {dims}")
    print("\n| measurement | ms |\n|---|---:|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
