"""The standard normal CDF and its inverse on float64 arrays, through ``torch.special``.

``ndtr(x) = erfc(−x/√2)/2`` keeps full relative precision in the lower tail (a complement
``(1 + erf(x/√2))/2``, which ``torch.special.ndtr`` computes, rounds to 0 below about −8);
``torch.special.ndtri`` is the Cephes inverse. Both agree with ``scipy.special`` to float64
rounding down to the subnormal range (``tests/test_forecast.py``), without the cost of
importing scipy on the forecast path.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


def ndtr(x: Any) -> np.ndarray:
    """Φ(x), elementwise; NaN stays NaN."""
    t = torch.as_tensor(np.asarray(x, dtype=np.float64))
    return (0.5 * torch.special.erfc(-t / math.sqrt(2.0))).numpy()


def ndtri(p: Any) -> np.ndarray:
    """Φ⁻¹(p), elementwise: −inf at 0, +inf at 1, NaN outside [0, 1]."""
    t = torch.as_tensor(np.asarray(p, dtype=np.float64))
    return torch.special.ndtri(t).numpy()
