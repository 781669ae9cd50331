"""Uncertainty-based reweighting of one member (SSSD) of a linear stack.

The member's predicted std s_t is compared with its own recent level: z_t = log(s_t / m_t),
where m_t is the median of the member's previous ``window`` predicted stds (z = 0 without
history). Its stack weight is w_t = clip(w0 · exp(−γ · clip(z_t, ±z_clip)), lo, hi): with γ > 0 it
rises when the member is unusually sure of itself and falls when it is unusually unsure.
γ ≥ 0 is chosen out of fold (γ = 0, a constant weight, is one of the candidates, so a std
signal that does not predict the member's errors leaves the weight flat instead of inventing a
pattern).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def relative_log_std(std: np.ndarray, history: np.ndarray | None, window: int) -> np.ndarray:
    """(N,) z_t = log(std_t / median of the ``window`` stds before t), in time order.

    Args:
        std: (N,) predicted stds (> 0) in decision-time order.
        history: (K,) stds of the decision times just before the first one (may be empty).
        window: how many previous stds form the reference level.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    hist = np.asarray(history if history is not None else [], dtype=np.float64)
    s = pd.Series(np.concatenate([hist, np.asarray(std, dtype=np.float64)]))
    ref = s.shift(1).rolling(window, min_periods=1).median().to_numpy()[len(hist) :]
    cur = s.to_numpy()[len(hist) :]
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.log(cur / ref)
    return np.where(np.isfinite(z), z, 0.0)


def weight_multiplier(z: np.ndarray, gamma: float, z_clip: float) -> np.ndarray:
    """(N,) exp(−γ · clip(z, −z_clip, z_clip))."""
    return np.exp(-float(gamma) * np.clip(z, -z_clip, z_clip))
