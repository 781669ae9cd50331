"""One-line direction rules beside the model's direction: what a trader gets for free.

At decision time t, r_last = log(close(t) / close(t − 5 min)) is the last 5m return (NaN when
that bar is missing). "Reversal" predicts the sign of −r_last (bid quotes mean-revert at
short horizons), "momentum" the sign of r_last. Their directional accuracy per horizon goes in
the report next to the model's, and a note says plainly when the model's direction adds
nothing over the better rule.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from forex_diffusion.evaluation import metrics as M
from forex_diffusion.evaluation.summary import EvaluationSummary

RULES = {"reversal": -1.0, "momentum": 1.0}


def direction_rule_signals(bars_5m: pd.DataFrame, times: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    """(N,) signals of each rule at the decision times (the close of a 5m bar), from bars that
    closed by t only."""
    close_time = bars_5m.index + pd.Timedelta(minutes=5)
    close = pd.Series(bars_5m["close"].to_numpy(np.float64), index=close_time)
    prev = close.shift(1)
    contiguous = pd.Series(close_time, index=close_time).diff() == pd.Timedelta(minutes=5)
    last = np.log(close / prev).where(contiguous)
    r = last.reindex(times).to_numpy()
    return {name: sign * r for name, sign in RULES.items()}


def with_direction_rules(
    summary: EvaluationSummary, rules: dict[str, np.ndarray], targets: np.ndarray
) -> EvaluationSummary:
    """The summary with each rule's accuracy per horizon in ``diagnostics`` and one note per
    horizon comparing it with the model's direction."""
    table: dict[str, dict[str, float]] = {}
    notes = []
    for j, h in enumerate(summary.horizons):
        acc = {
            name: M.directional_accuracy(signal, targets[:, j]).accuracy
            for name, signal in rules.items()
        }
        table[str(h)] = acc
        best_rule = max(acc, key=lambda k: acc[k] if np.isfinite(acc[k]) else -1.0)
        line = (
            f"Direction at {h} min: reversal rule {acc['reversal']:.1%}, "
            f"momentum rule {acc['momentum']:.1%}"
        )
        if summary.model_name:
            model_acc = summary.get(summary.model_name, h).directional_accuracy
            verdict = (
                "the model's direction adds nothing over the better rule"
                if not model_acc > acc[best_rule]
                else "the model's direction beats both rules"
            )
            line += f", model {model_acc:.1%}: {verdict}."
        else:
            line += "."
        notes.append(line)
    return replace(
        summary,
        notes=(*summary.notes, *notes),
        diagnostics={**summary.diagnostics, "direction_rules": table},
    )
