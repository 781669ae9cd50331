"""Date ranges of a walk-forward evaluation: the evaluated window, what the model has seen,
and where the baselines are tuned (SPEC §7).

All ranges are half-open UTC intervals [start, end). A date given without a time of day as
an END is inclusive of that whole day (``--end 2023-12-31`` evaluates up to 2023-12-31 24:00),
the same convention as ``data.splits``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pandas as pd

from forex_diffusion.config.sssd_config import SSSDConfig
from forex_diffusion.errors import ConfigError
from forex_diffusion.timeframes import ONE_DAY, UtcRange, fmt_time, to_utc


def _is_date_only(value: Any) -> bool:
    if isinstance(value, date) and not isinstance(value, datetime):
        return True
    if isinstance(value, str):
        return len(value.strip()) == 10  # YYYY-MM-DD
    return False


def evaluation_range(start: Any, end: Any) -> UtcRange:
    """The evaluated window [start, end) from user input (``end`` as a bare date is inclusive).

    Raises:
        ConfigError: unparsable dates or an empty range.
    """
    try:
        t0 = to_utc(pd.Timestamp(start))
        t1 = to_utc(pd.Timestamp(end))
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"evaluation range: cannot read start {start!r} / end {end!r} as dates ({exc}); "
            "use YYYY-MM-DD"
        ) from None
    if _is_date_only(end):
        t1 = t1 + ONE_DAY
    if t1 <= t0:
        raise ConfigError(
            f"evaluation range: end {end} is not after start {start}; pass --end after --start"
        )
    return UtcRange("evaluated range", t0, t1)


def seen_ranges(model_config: SSSDConfig) -> tuple[UtcRange, UtcRange]:
    """The model's training and validation ranges (validation picks the checkpoint: seen too)."""
    sp = model_config.data.splits
    return sp.train.utc_range("training range"), sp.val.utc_range("validation range")


def check_unseen(
    evaluated: UtcRange, model_config: SSSDConfig, max_horizon_minutes: int, model: str
) -> None:
    """Refuse an evaluation whose decision times or targets fall in what the model has seen.

    The targets of the last decision times reach ``max_horizon_minutes`` past the evaluated
    end, so the checked span is [start, end + longest horizon).

    Raises:
        ConfigError: naming the evaluated range and both seen ranges, with what to do.
    """
    span = UtcRange(
        evaluated.name, evaluated.start, evaluated.end + pd.Timedelta(minutes=max_horizon_minutes)
    )
    train, val = seen_ranges(model_config)
    hit = [r for r in (train, val) if span.overlaps(r)]
    if not hit:
        return
    last_seen = max(train.end, val.end)
    raise ConfigError(
        f"refusing to evaluate model {model!r} on {evaluated.label()} (targets up to "
        f"{fmt_time(span.end)}): it overlaps the model's "
        + " and the ".join(r.name for r in hit)
        + f". The model's {train} and its {val} were both seen in training (validation "
        f"picked the checkpoint). Choose a range that starts on or after "
        f"{fmt_time(last_seen)} (or ends before the training range), or evaluate with "
        "--baselines-only."
    )


@dataclass(frozen=True)
class TuningChoice:
    """Where the baselines are tuned and why (a sentence for the report)."""

    range: UtcRange
    source: str  # "training range" | "window before start"
    reason: str


def choose_tuning_range(
    evaluated: UtcRange, train: UtcRange, tuning_days: int, what: str
) -> TuningChoice:
    """The training range when it ends by the evaluation start, else ``tuning_days`` before it.

    Args:
        evaluated: the evaluated window.
        train: the training range (of the model, or of the config for baselines only).
        tuning_days: length of the fallback window that ends at the evaluation start.
        what: whose training range it is, for the sentence ("the model's", "the config's").
    """
    if train.end <= evaluated.start:
        return TuningChoice(
            train,
            "training range",
            f"Baselines tuned on {what} training range {train.label()} "
            "(it ends before the evaluated range).",
        )
    window = UtcRange(
        "tuning window", evaluated.start - pd.Timedelta(days=tuning_days), evaluated.start
    )
    return TuningChoice(
        window,
        "window before start",
        f"Baselines tuned on the {tuning_days} days before the evaluation start, "
        f"{window.label()}, because {what} training range {train.label()} does not end "
        "before the evaluated range.",
    )
