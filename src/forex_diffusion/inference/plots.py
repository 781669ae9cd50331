"""Fan chart of a forecast over the recent candles (matplotlib, Agg backend).

The time axis is in trading time: market closures (weekends, holidays, any gap over 30 minutes)
are cut out and marked, so a forecast made on Monday 00:00 is not squashed beside an empty
weekend.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from forex_diffusion.inference.prediction import SSSDPrediction

_CLOSURE = pd.Timedelta(minutes=30)
_STEP = pd.Timedelta(minutes=5)


def _trading_axis(times: pd.DatetimeIndex) -> tuple[np.ndarray, list[int]]:
    """Positions in trading minutes for sorted ``times``: gaps over 30 minutes count as one
    5-minute step. Returns the positions and the indices where a closure was cut out."""
    if len(times) == 0:
        return np.zeros(0), []
    gaps = times.to_series().diff().fillna(_STEP)
    cut = [i for i, g in enumerate(gaps) if g > _CLOSURE]
    steps = gaps.where(gaps <= _CLOSURE, _STEP).dt.total_seconds().to_numpy() / 60
    steps[0] = 0.0
    return np.cumsum(steps), cut


def _ticks(
    times: pd.DatetimeIndex,
    pos: np.ndarray,
    t: pd.Timestamp,
    t_pos: float,
    horizons: list[int],
    min_gap: float,
) -> tuple[list[float], list[str]]:
    """Tick positions and labels on the trading axis: the decision time, every forecast target
    and about seven history times, none closer than ``min_gap`` to a kept one (the decision
    time and the targets win)."""
    kept: list[tuple[float, str]] = [(t_pos, f"{t:%a %H:%M}")]
    for h in horizons:
        x = t_pos + h
        if all(abs(x - k) >= min_gap for k, _ in kept):
            kept.append((x, f"{t + pd.Timedelta(minutes=h):%a %H:%M}"))
    if len(pos):
        for i in np.linspace(0, len(pos) - 1, num=min(8, len(pos)), dtype=int):
            if all(abs(pos[i] - k) >= min_gap for k, _ in kept):
                kept.append((float(pos[i]), f"{times[i]:%a %H:%M}"))
    kept.sort()
    return [k for k, _ in kept], [label for _, label in kept]


def plot_fan_chart(recent_5m: pd.DataFrame, pred: SSSDPrediction, path: str | Path) -> Path:
    """Recent 5m closes and the forecast's 50 % (q25–q75) and 90 % (q05–q95) bands and median
    at t + h, on a trading-time axis; horizons and the last close labelled; price on the left
    axis, the change in pips on the right.

    Args:
        recent_5m: 5m bars (open-time index, UTC) up to the decision time; closes are drawn at
            their close time (open + 5 min).
        pred: the forecast (its samples give the 50 % band).
        path: PNG to write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t = pred.timestamp
    closes = recent_5m["close"].copy()
    closes.index = closes.index + _STEP
    closes = closes[closes.index <= t]
    pos, cuts = _trading_axis(closes.index)
    t_pos = pos[-1] + (t - closes.index[-1]).total_seconds() / 60 if len(pos) else 0.0
    horizons = pred.horizons
    x_fc = np.array([t_pos] + [t_pos + h for h in horizons])
    levels = pred.price_levels()
    quart = {
        q: np.array([np.quantile(pred.samples[h], q) for h in horizons]) + pred.last_close
        for q in (0.25, 0.75)
    }

    def path_of(values: dict[int, float] | np.ndarray) -> np.ndarray:
        body = values if isinstance(values, np.ndarray) else [values[h] for h in horizons]
        return np.concatenate([[pred.last_close], body])

    fig, ax = plt.subplots(figsize=(11, 5))
    segments = np.split(np.arange(len(pos)), cuts)
    for k, seg in enumerate(segments):
        ax.plot(
            pos[seg],
            closes.to_numpy()[seg],
            color="black",
            lw=1,
            label="5m close" if k == 0 else None,
        )
    for i in cuts:
        ax.axvline(pos[i] - 2.5, color="lightgrey", lw=4, zorder=0)
        gap = closes.index[i] - closes.index[i - 1]
        ax.annotate(
            f"closed {gap.total_seconds() / 3600:.0f} h",
            (pos[i] - 2.5, 0.97),
            xycoords=("data", "axes fraction"),
            ha="center",
            va="top",
            fontsize=7,
            color="grey",
            rotation=90,
        )
    ax.fill_between(
        x_fc,
        path_of(levels["q05"]),
        path_of(levels["q95"]),
        color="tab:blue",
        alpha=0.18,
        label="90 % band (q05–q95)",
    )
    ax.fill_between(
        x_fc,
        path_of(quart[0.25]),
        path_of(quart[0.75]),
        color="tab:blue",
        alpha=0.35,
        label="50 % band (q25–q75)",
    )
    ax.plot(x_fc, path_of(levels["q50"]), color="tab:blue", marker="o", lw=1.5, label="median")
    ax.axvline(t_pos, color="grey", ls="--", lw=0.8)
    ax.axhline(pred.last_close, color="grey", ls=":", lw=0.8)
    ax.annotate(
        f"last close {pred.last_close:.5f}",
        (t_pos, pred.last_close),
        xytext=(-6, -12),
        textcoords="offset points",
        ha="right",
        fontsize=8,
    )
    for k, (h, x, y) in enumerate(zip(horizons, x_fc[1:], path_of(levels["q95"])[1:], strict=True)):
        ax.annotate(
            f"+{h} min",
            (x, y),
            xytext=(0, 4 + 11 * (k % 3)),
            textcoords="offset points",
            ha="center",
            fontsize=8,
        )
    start = pos[0] if len(pos) else t_pos - 5
    span = x_fc[-1] - start
    ax.set_xlim(start, x_fc[-1] + 0.04 * span)
    ax.set_xticks(*_ticks(closes.index, pos, t, t_pos, horizons, min_gap=0.07 * span))
    for label in ax.get_xticklabels():
        label.set(rotation=30, ha="right", fontsize=8)
    ax.set_xlabel("time (UTC; market closures cut out)")
    ax.set_ylabel(f"{pred.asset} price")
    pips = ax.secondary_yaxis(
        "right",
        functions=(
            lambda p: (np.asarray(p) - pred.last_close) / pred.pip_size,
            lambda d: pred.last_close + np.asarray(d) * pred.pip_size,
        ),
    )
    pips.set_ylabel("change from last close (pips)")
    seed = "" if pred.seed is None else f", seed {pred.seed}"
    ax.set_title(
        f"{pred.asset} forecast at {t:%a %Y-%m-%d %H:%M} UTC "
        f"({pred.model_name}, {pred.num_samples} samples{seed})"
    )
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
