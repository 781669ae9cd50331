"""Shared set-up of the robustness tests: a synthetic store, an untrained tiny checkpoint, the
CLI runner, store snapshots and tidy CSV text."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from typer.testing import CliRunner

from forex_diffusion.cli.main import app
from forex_diffusion.data.store import CandleStore
from forex_diffusion.data.synthetic import generate_synthetic_market
from forex_diffusion.models.checkpoint import load_checkpoint, save_checkpoint
from walk_forward_utils import config_overrides, eval_config, write_untrained_checkpoint

START, END = (
    "2019-01-01",
    "2019-02-09",
)  # synthetic market; the last bar closes Fri 2019-02-08 22:00
TIDY_HEADER = "timestamp,open,high,low,close,volume"


def market() -> pd.DataFrame:
    """The seeded synthetic 1-minute market of the robustness tests."""
    return generate_synthetic_market(START, END, seed=3)


def make_root(root: Path) -> Path:
    """``root`` with a store (``root/store``, asset EURUSD) and an untrained tiny checkpoint
    (``root/checkpoints/EURUSD/tiny_eval/best.ckpt``)."""
    candles = market()
    with CandleStore(root / "store") as store:
        store.write("EURUSD", candles, source="synthetic test market")
    write_untrained_checkpoint(eval_config(root), candles)
    return root


def perturbed_copy(path: Path, target: Path, seed: int = 1) -> Path:
    """The checkpoint at ``path`` with every weight moved by N(0, 0.05²) noise (same name,
    config and standardizer: another model)."""
    loaded = load_checkpoint(path)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in loaded.model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return save_checkpoint(
        target, loaded.model, loaded.config, loaded.feature_names, loaded.standardizer
    )


def checkpoint(root: Path) -> Path:
    return root / "checkpoints" / "EURUSD" / "tiny_eval" / "best.ckpt"


def cli(*args: str, root: Path | None = None) -> tuple[int, str]:
    """Run ``forex-diffusion ARGS`` (with the tiny config's overrides for ``root``); never a
    traceback."""
    extra = [x for o in config_overrides(root) for x in ("--override", o)] if root else []
    words = next((i for i, a in enumerate(args) if a.startswith("-")), len(args))
    result = CliRunner().invoke(app, [*args[:words], *extra, *args[words:]])  # args win
    out = result.output
    assert "Traceback" not in out, out
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result.exit_code, out


def snapshot(folder: Path, pattern: str = "*") -> dict[str, bytes]:
    """Every file under ``folder`` matching ``pattern`` (but lock files) by relative path,
    with its bytes."""
    if not folder.is_dir():
        return {}
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob(pattern))
        if p.is_file() and p.name != ".lock"
    }


def tidy_lines(
    start: str = "2019-01-02 00:00", n: int = 180, freq: str = "1min", price: float = 1.15
) -> list[str]:
    """Data lines of a tidy CSV: ``n`` consistent bars from ``start`` every ``freq``."""
    times = pd.date_range(start, periods=n, freq=freq, tz="UTC")
    close = price + 1e-4 * np.round(np.sin(np.arange(n)) * 10) / 10
    return [
        f"{t:%Y-%m-%dT%H:%M:%SZ},{price!r},{max(price, c) + 1e-4!r},{min(price, c) - 1e-4!r},{c!r},1"
        for t, c in zip(times, close.tolist(), strict=True)
    ]


def write_tidy(path: Path, lines: Sequence[str]) -> Path:
    path.write_text(TIDY_HEADER + "\n" + "\n".join(lines) + "\n")
    return path
