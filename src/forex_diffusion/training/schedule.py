"""Learning-rate schedule: linear warmup, then cosine decay to a floor (pure function)."""

from __future__ import annotations

import math


def warmup_cosine_factor(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """LR multiplier at optimizer ``step`` (0-based).

    Linear from 1/warmup to 1 over ``warmup_steps`` steps, then a half cosine from 1 down to
    ``min_ratio`` at ``total_steps``; constant ``min_ratio`` afterwards.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
