"""Fan chart of a forecast over the recent candles (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from forex_diffusion.inference.prediction import SSSDPrediction


def plot_fan_chart(recent_5m: pd.DataFrame, pred: SSSDPrediction, path: str | Path) -> Path:
    """Recent 5m closes and the forecast's q05–q95 band and median at t + h.

    Args:
        recent_5m: 5m bars (open-time index) up to the decision time; closes are drawn at
            their close time (open + 5 min).
        pred: the forecast.
        path: PNG to write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t = pred.timestamp
    levels = pred.price_levels()
    times = [t] + [t + pd.Timedelta(minutes=h) for h in pred.horizons]
    q05 = [pred.last_close] + [levels["q05"][h] for h in pred.horizons]
    q50 = [pred.last_close] + [levels["q50"][h] for h in pred.horizons]
    q95 = [pred.last_close] + [levels["q95"][h] for h in pred.horizons]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    closes = recent_5m["close"].copy()
    closes.index = closes.index + pd.Timedelta(minutes=5)
    gaps = closes.index.to_series().diff() > pd.Timedelta(minutes=30)
    breaks = pd.Series(float("nan"), index=closes.index[gaps.to_numpy()] - pd.Timedelta(minutes=1))
    closes = pd.concat([closes, breaks]).sort_index()  # NaN breaks the line at market gaps
    ax.plot(closes.index, closes.to_numpy(), color="black", lw=1, label="5m close")
    ax.fill_between(times, q05, q95, color="tab:blue", alpha=0.25, label="90% interval (q05–q95)")
    ax.plot(times, q50, color="tab:blue", marker="o", lw=1.5, label="median")
    ax.axvline(t, color="grey", ls="--", lw=0.8)
    ax.set_title(
        f"{pred.asset} forecast at {t:%Y-%m-%d %H:%M} UTC ({pred.model_name}, {pred.num_samples} samples)"
    )
    ax.set_ylabel("price")
    ax.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
