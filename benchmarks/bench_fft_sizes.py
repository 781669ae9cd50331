"""FFT lengths for the S4D convolution: the 5-smooth length (scipy's next_fast_len, what the
layer used before) against the even 2·3·7-smooth one (``fast_fft_len``) and the power of two.

Usage:
    python benchmarks/bench_fft_sizes.py [--threads 2] [--runs 9]

For each window length of the default and cpu_small configs (batch and width of their
benchmarks), the two transforms of one causal convolution (real FFT of the zero-padded input,
inverse FFT of its product with the kernel spectrum), timed at each candidate length in turn,
``--runs`` times, in a process that keeps freed memory (as the CLI's); the table gives medians
and their ratio to the 5-smooth length. Nothing else should run on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from forex_diffusion.allocator import keep_freed_memory
from forex_diffusion.models.s4_layer import fast_fft_len

#: (batch, window length, channels): the default size's four windows at a batch of 64, and
#: cpu_small's at its training batch of 128
SHAPES = [
    (64, 500, 128),
    (64, 166, 128),
    (64, 41, 128),
    (64, 10, 128),
    (128, 144, 64),
    (128, 96, 64),
    (128, 48, 64),
    (128, 30, 64),
]


def five_smooth(n: int) -> int:
    """The smallest 2^a·3^b·5^c >= n."""
    m = n
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def conv_ms(batch: int, length: int, channels: int, n_fft: int, runs: int) -> list[float]:
    """Times of the two transforms of one convolution: rfft of the zero-padded channel-major
    input and irfft of its product with a kernel spectrum (the copies around them, the same
    at every length, are left out)."""
    u = torch.nn.functional.pad(torch.randn(batch, channels, length), (0, n_fft - length))
    k_f = torch.fft.rfft(torch.randn(channels, length), n=n_fft)

    def conv() -> torch.Tensor:
        return torch.fft.irfft(torch.fft.rfft(u).mul_(k_f), n=n_fft)

    for _ in range(2):
        conv()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        conv()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    print(
        f"FFT lengths, the transforms of one causal convolution · threads {args.threads} · median of {args.runs}"
    )
    print()
    print("| B, L, H | 5-smooth | ms | fast_fft_len | ms | ratio | power of 2 | ms | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for batch, length, channels in SHAPES:
        sizes = {
            "five": five_smooth(2 * length),
            "ours": fast_fft_len(2 * length),
            "pow2": 1 << (2 * length - 1).bit_length(),
        }
        samples: dict[str, list[float]] = {name: [] for name in sizes}
        for _ in range(args.runs):  # alternate the lengths, one timed call each
            for name, n_fft in sizes.items():
                samples[name] += conv_ms(batch, length, channels, n_fft, 1)
        med = {name: statistics.median(v) for name, v in samples.items()}
        print(
            f"| {batch}, {length}, {channels} | {sizes['five']} | {med['five']:.2f} "
            f"| {sizes['ours']} | {med['ours']:.2f} | {med['ours'] / med['five']:.2f} "
            f"| {sizes['pow2']} | {med['pow2']:.2f} | {med['pow2'] / med['five']:.2f} |"
        )


if __name__ == "__main__":
    main()
