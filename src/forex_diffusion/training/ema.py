"""An exponential moving average (EMA) of the model's weights during training.

After optimiser step n (n = 0, 1, …) every floating-point entry w of the model's state moves its
shadow copy e towards it,

    e ← d_n · e + (1 − d_n) · w,    d_n = min(d, (1 + n) / (10 + n)),

so that the average forgets its random start early on (d_n small) and then averages over about
1 / (1 − d) steps; integer buffers are copied. The shadow starts equal to the weights. Validation,
early stopping and every checkpoint's weights use the shadow; the optimiser keeps training the
raw weights, which checkpoints carry beside it for an exact resume.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import Tensor, nn


def ema_decay_at(decay: float, updates: int) -> float:
    """d_n of the module docstring after ``updates`` earlier updates."""
    return min(decay, (1.0 + updates) / (10.0 + updates))


def state_copy(model: nn.Module) -> dict[str, Tensor]:
    """A detached copy of ``model``'s state (the EMA's start; weights held aside)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@torch.no_grad()
def ema_update_(shadow: dict[str, Tensor], state: Mapping[str, Tensor], decay: float) -> None:
    """One EMA step in place: shadow ← decay · shadow + (1 − decay) · state (floats; others
    copied)."""
    for key, value in state.items():
        e = shadow[key]
        if e.is_floating_point():
            e.lerp_(value.detach().to(e.dtype), 1.0 - decay)
        else:
            e.copy_(value)


@contextmanager
def weights_swapped(model: nn.Module, weights: Mapping[str, Tensor]) -> Iterator[dict[str, Tensor]]:
    """``model`` holds ``weights`` inside the block and its own weights again after it; the
    block gets the copy of its own weights held aside meanwhile."""
    own = state_copy(model)
    model.load_state_dict(weights)
    try:
        yield own
    finally:
        model.load_state_dict(own)
