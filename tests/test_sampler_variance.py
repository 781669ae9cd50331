"""Per-step variance and end-to-end spread of the samplers against their closed forms.

With an exact denoiser for a Gaussian target N(0, s²), every sampler step is linear in x_t plus
independent noise: x_prev = A·x_t + σ·z. The variance therefore follows V' = A²V + σ² from V = 1,
computed here in float64 from the schedule's ᾱ and the textbook coefficients (DDIM with eta,
DDPM = the posterior variance β̃ = (1-ᾱ')/(1-ᾱ)·(1-ᾱ/ᾱ')), independently of the scheduler's own
update code. A sampler that injects the wrong variance (for example the forward β instead of β̃)
or mixes the wrong share of ε̂ fails both the per-step and the end-to-end checks.
"""

from __future__ import annotations

import math

import pytest
import torch

from forex_diffusion.models.diffusion_scheduler import DiffusionScheduler, v_from_eps

S = 0.7  # target std


def _exact_model(sch: DiffusionScheduler, s: float):
    def model_fn(x: torch.Tensor, i: int, t: int) -> torch.Tensor:
        ab = float(sch.alphas_cumprod[t])
        sa, s1 = math.sqrt(ab), math.sqrt(1 - ab)
        eps = s1 * x / (ab * s * s + 1 - ab)
        return eps if sch.prediction == "epsilon" else v_from_eps(eps, x, sa, s1)

    return model_fn


def _closed_form_sigma(ab: float, ab_prev: float, eta: float) -> float:
    """DDIM σ_t(η) = η·√((1-ᾱ')/(1-ᾱ))·√(1-ᾱ/ᾱ'); η = 1 is DDPM's posterior std √β̃."""
    if ab_prev >= 1.0:
        return 0.0
    return eta * math.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev))


def _closed_form_variance(sch: DiffusionScheduler, steps: int, eta: float, s: float) -> float:
    v = 1.0
    for st in sch.sampling_steps(steps):
        ab, abp = st.alpha_bar, st.alpha_bar_prev
        k = math.sqrt(ab) * s * s / (ab * s * s + 1 - ab)  # x̂0 = k·x_t
        sig = _closed_form_sigma(ab, abp, eta)
        d = math.sqrt(max(1 - abp - sig**2, 0.0))
        a = math.sqrt(abp) * k + d * (1 - math.sqrt(ab) * k) / math.sqrt(1 - ab)
        v = a * a * v + sig * sig
    return v


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
@pytest.mark.parametrize("eta", [1.0, 0.5])
@pytest.mark.parametrize("steps", [10, 20, 50])
def test_each_step_injects_the_closed_form_variance(
    prediction: str, eta: float, steps: int
) -> None:
    """x_prev − E[x_prev] over many noise draws has std σ_t(η) at every step of the plan."""
    sch = DiffusionScheduler(1000, prediction=prediction)  # type: ignore[arg-type]
    model = _exact_model(sch, S)
    n = 200_000
    g = torch.Generator().manual_seed(5)
    x_t = torch.randn(n, generator=g, dtype=torch.float64)
    for st in sch.sampling_steps(steps)[:-1]:
        out = model(x_t, st.index, st.t)
        det = sch.step(out, x_t, st, eta=0.0)  # deterministic part with σ = 0 ...
        ab, abp = st.alpha_bar, st.alpha_bar_prev
        sig = _closed_form_sigma(ab, abp, eta)
        # ... and the mean the stochastic step must have: its ε̂ share shrinks to √(1-ᾱ'-σ²)
        x0 = (x_t - math.sqrt(1 - ab) * _eps(sch, out, x_t, ab)) / math.sqrt(ab)
        mean = math.sqrt(abp) * x0 + math.sqrt(1 - abp - sig**2) * _eps(sch, out, x_t, ab)
        noisy = sch.step(out, x_t, st, eta=eta, generator=g)
        resid = noisy - mean
        assert abs(float(resid.mean())) < 6 * sig / math.sqrt(n) + 1e-12, st
        assert float(resid.std()) == pytest.approx(sig, rel=0.01), (st, sig)
        assert torch.equal(sch.step(out, x_t, st, eta=0.0), det)


def _eps(sch: DiffusionScheduler, out: torch.Tensor, x_t: torch.Tensor, ab: float) -> torch.Tensor:
    if sch.prediction == "epsilon":
        return out
    return math.sqrt(1 - ab) * x_t + math.sqrt(ab) * out


@pytest.mark.parametrize(
    ("sampler", "eta"), [("ddpm", 1.0), ("ddim", 0.0), ("ddim", 0.5), ("ddim", 1.0)]
)
@pytest.mark.parametrize("steps", [10, 20, 50])
def test_sample_spread_matches_the_closed_form_recursion(
    sampler: str, eta: float, steps: int
) -> None:
    sch = DiffusionScheduler(1000, prediction="v")
    n = 100_000
    g = torch.Generator().manual_seed(11)
    x_T = torch.randn(n, generator=g, dtype=torch.float64)
    x0 = sch.sample(_exact_model(sch, S), x_T, sampler, steps, eta, g)  # type: ignore[arg-type]
    expected = math.sqrt(_closed_form_variance(sch, steps, 1.0 if sampler == "ddpm" else eta, S))
    # std of a sample std is s/√(2n) ≈ 0.22 % here
    assert float(x0.std()) == pytest.approx(expected, rel=0.01)


def test_ddpm_with_few_steps_is_under_dispersed_by_the_closed_form_amount() -> None:
    """The respaced posterior drops Var(x0 | x_t): 20 DDPM steps return a std below the target."""
    sch = DiffusionScheduler(1000, prediction="v")
    ratio = math.sqrt(_closed_form_variance(sch, 20, 1.0, S)) / S
    assert ratio < 0.97
    assert math.sqrt(_closed_form_variance(sch, 1000, 1.0, S)) / S == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("steps", [10, 20, 50])
def test_dpmpp_2m_is_deterministic_and_near_the_target_spread(steps: int) -> None:
    sch = DiffusionScheduler(1000, prediction="v")
    g = torch.Generator().manual_seed(3)
    x_T = torch.randn(50_000, generator=g, dtype=torch.float64)
    a = sch.sample(_exact_model(sch, S), x_T, "dpmpp_2m", steps)
    b = sch.sample(_exact_model(sch, S), x_T, "dpmpp_2m", steps)
    assert torch.equal(a, b)
    # linear in x_T with no injected noise: the output is an exact multiple of the input
    k = float((a * x_T).sum() / (x_T * x_T).sum())
    assert torch.allclose(a, k * x_T, atol=1e-9)
    assert abs(k) / S == pytest.approx(1.0, abs=0.03 if steps == 10 else 0.015)
