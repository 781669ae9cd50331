"""Size of the Diebold–Mariano test as the evaluation uses it, by Monte Carlo (runs in CI).

Under H0 (equal expected loss) with MA(h−1) loss differentials, the shape overlapping h-step
forecasts produce, the default test must reject at close to the nominal 5 %: within one point
at the sample sizes of a half-year evaluation. The Bartlett (Newey–West) variance with lag
h − 1 is biased low for such differentials and over-rejects; the test shows that too, so a
change of default back to it fails here.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from forex_diffusion.config.sssd_config import EvaluationConfig
from forex_diffusion.evaluation.stat_tests import diebold_mariano

REPS = 1500
N = 2700  # hourly decision times over half a year


def _size(h: int, kernel: str | None, n: int = N, reps: int = REPS) -> float:
    rng = np.random.default_rng(h)
    zeros = np.zeros(n)
    rejected = 0
    for _ in range(reps):
        d = np.convolve(rng.standard_normal(n + h - 1), np.ones(h), "valid")
        kw = {} if kernel is None else {"kernel": kernel}
        rejected += diebold_mariano(d, zeros, lag=h - 1, **kw).p_value < 0.05  # type: ignore[arg-type]
    return rejected / reps


@pytest.mark.parametrize("h", [1, 4, 8])
def test_default_dm_test_has_nominal_size(h: int) -> None:
    se = np.sqrt(0.05 * 0.95 / REPS)  # ≈ 0.56 points
    size = _size(h, None)
    assert abs(size - 0.05) < 0.01 + 2 * se, size


def test_bartlett_over_rejects_which_is_why_it_is_not_the_default() -> None:
    assert _size(8, "bartlett", reps=600) > 0.08


def test_evaluation_uses_the_same_default_as_the_function() -> None:
    default = inspect.signature(diebold_mariano).parameters["kernel"].default
    assert EvaluationConfig().dm_kernel == default
