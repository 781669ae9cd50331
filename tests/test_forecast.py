"""The one sample-based forecast type: estimators, PIT, P(up), mixtures, and its users."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from forex_diffusion.forecast import (
    SUMMARY_LEVELS,
    MixtureForecast,
    SampleForecast,
    summarize,
    weighted_quantile,
)
from forex_diffusion.inference.prediction import SSSDPrediction
from forex_diffusion.models.distribution import ForecastDistribution
from forex_diffusion.models.sssd import ForecastOutput
from forex_diffusion.normal import ndtr, ndtri


def _samples(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 1.0, shape)


def test_moments_and_quantiles_are_numpy_weibull_with_gaussian_tails_and_ddof1() -> None:
    x = _samples((3, 4, 51))
    f = SampleForecast.of(x)
    assert f.num_samples == 51
    np.testing.assert_array_equal(f.mean(), x.mean(axis=-1))
    np.testing.assert_array_equal(f.std(), x.std(axis=-1, ddof=1))
    # inside the samples' levels [1/(S+1), S/(S+1)]: order statistics at (S + 1) q, i.e. numpy's
    # "weibull" method
    np.testing.assert_allclose(f.quantile(0.3), np.quantile(x, 0.3, axis=-1, method="weibull"))
    qs = f.quantile([0.05, 0.5, 0.95])
    assert qs.shape == (3, 3, 4)
    srt = np.sort(x, axis=-1)
    pos = 0.05 * 52 - 1
    lo = int(np.floor(pos))
    np.testing.assert_allclose(qs[0], srt[..., lo] + (pos - lo) * (srt[..., lo + 1] - srt[..., lo]))
    # beyond them: Gaussian tails with the samples' std, continuing from the outermost sample
    sd = x.std(axis=-1, ddof=1)
    tail = srt[..., 0] + sd * (stats.norm.ppf(0.005) - stats.norm.ppf(1 / 52))
    np.testing.assert_allclose(f.quantile(0.005), tail)
    s = summarize(f)
    for got, level in zip((s.q05, s.q50, s.q95), SUMMARY_LEVELS, strict=True):
        np.testing.assert_allclose(got, np.quantile(x, level, axis=-1, method="weibull"))
    np.testing.assert_array_equal(s.mean, f.mean())
    np.testing.assert_array_equal(s.std, f.std())


def test_central_intervals_of_draws_from_the_truth_are_not_narrow() -> None:
    """90 % intervals from 100 samples of the outcome's own law cover 90 % (numpy's default
    linear positions cover about 88 %: the bias issue 16 names)."""
    rng = np.random.default_rng(0)
    n, s = 40_000, 100
    x = rng.standard_normal((n, s))
    y = rng.standard_normal(n)
    lo, hi = SampleForecast.of(x).quantile([0.05, 0.95])
    cover = np.mean((y >= lo) & (y <= hi))
    assert abs(cover - 0.90) < 0.006, cover
    lin_lo, lin_hi = np.quantile(x, [0.05, 0.95], axis=-1)
    assert np.mean((y >= lin_lo) & (y <= lin_hi)) < 0.89


def test_levels_of_each_sample_set_of_its_own_equal_row_by_row_quantiles() -> None:
    from forex_diffusion.forecast import sample_quantile

    x = _samples((3, 4, 51))
    levels = np.random.default_rng(1).uniform(0.001, 0.999, (3, 4, 7))  # tails included
    out = sample_quantile(x, levels)
    assert out.shape == (3, 4, 7)
    for i in range(3):
        for j in range(4):
            np.testing.assert_allclose(out[i, j], sample_quantile(x[i, j], levels[i, j]))
    with pytest.raises(ValueError, match="levels"):
        sample_quantile(x, levels[:2])


def test_tensors_are_accepted_and_dtype_is_kept() -> None:
    x = torch.randn(2, 3, 20, generator=torch.Generator().manual_seed(0), requires_grad=True)
    f = SampleForecast.of(x)
    assert f.samples.dtype == np.float32 and f.mean().dtype == np.float32
    same = SampleForecast.of(x.detach().numpy())
    np.testing.assert_array_equal(f.quantile([0.1, 0.9]), same.quantile([0.1, 0.9]))
    with pytest.raises(ValueError, match="axis"):
        SampleForecast.of(np.float64(1.0))


def test_pit_inverts_the_quantiles_and_missing_is_nan() -> None:
    f = SampleForecast.of(np.array([[1.0, 2.0, 2.5, 3.0], [0.0, 1.0, np.nan, 2.0]]))
    pit = f.cdf(np.array([2.25, 1.0]))
    assert pit[0] == pytest.approx((2 + 0.5) / 5)  # halfway between samples 2 and 3 of 4
    assert np.isnan(pit[1])  # a sample is missing
    assert np.isnan(f.cdf(np.array([np.nan, 1.0]))[0])
    x = _samples((6, 37))
    g = SampleForecast.of(x)
    levels = np.array([0.001, 0.01, 0.2, 0.5, 0.77, 0.99, 0.999])
    q = g.quantile(levels)  # (L, 6)
    for i, lv in enumerate(levels):
        np.testing.assert_allclose(g.cdf(q[i]), lv, rtol=1e-9)
    # far outside the samples the PIT is graded, not piled at the edge
    assert 0 < f.cdf(np.array([-10.0, -10.0]))[0] < f.cdf(np.array([0.5, 0.5]))[0] < 1 / 5


def test_normal_cdf_and_inverse_match_scipy_into_the_far_tails() -> None:
    """Φ by erfc keeps its relative precision far below the samples, where a PIT of an outcome
    many standard deviations out still needs a graded, non-zero value (1 − erf rounds to 0
    below about −8); Φ⁻¹ at the edges and outside [0, 1] as scipy."""
    from scipy import special

    x = np.linspace(-37.0, 37.0, 7401)
    np.testing.assert_allclose(ndtr(x), special.ndtr(x), rtol=1e-12, atol=0)
    assert ndtr(-30.0) > 0
    p = np.concatenate([np.linspace(1e-300, 1e-10, 50), np.linspace(0.0, 1.0, 1001)])
    np.testing.assert_allclose(ndtri(p), special.ndtri(p), rtol=1e-14, atol=1e-300)
    np.testing.assert_array_equal(np.isnan(ndtri([-0.1, 1.1, np.nan])), [True, True, True])
    far = SampleForecast.of(np.array([[0.0, 1.0, 2.0]])).cdf(np.array([-30.0]))[0]
    sd = np.std([0.0, 1.0, 2.0], ddof=1)
    assert far == pytest.approx(special.ndtr(special.ndtri(0.25) - 30.0 / sd), rel=1e-10)
    assert far > 0


def test_pit_of_exchangeable_observations_is_uniform() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20_000, 9))
    y = rng.normal(size=20_000)
    pit = SampleForecast.of(x).cdf(y)
    counts = np.bincount(np.rint(pit * 10 - 0.5).astype(int), minlength=10)
    assert stats.chisquare(counts).pvalue > 1e-3


def test_prob_up_counts_strictly_positive_samples() -> None:
    f = SampleForecast.of(np.array([[-1.0, 0.0, 1.0, 2.0], [np.nan, 1.0, 1.0, -1.0]]))
    np.testing.assert_array_equal(f.prob_up(), [0.5, 0.5])


def test_select_takes_rows_of_the_leading_axis() -> None:
    x = _samples((5, 2, 8))
    sub = SampleForecast.of(x).select(np.array([True, False, True, False, False]))
    np.testing.assert_array_equal(sub.samples, x[[0, 2]])


def _two_clusters() -> tuple[MixtureForecast, SampleForecast, SampleForecast]:
    a = SampleForecast.of(_samples((2, 400), 1) * 0.5 + 10.0)
    b = SampleForecast.of(_samples((2, 100), 2) - 10.0)
    return MixtureForecast.of([a, b], [0.75, 0.25]), a, b


def test_mixture_moments_are_exact_for_the_weights() -> None:
    mix, a, b = _two_clusters()
    mean = 0.75 * a.mean() + 0.25 * b.mean()
    var = 0.75 * (a.std() ** 2 + a.mean() ** 2) + 0.25 * (b.std() ** 2 + b.mean() ** 2) - mean**2
    np.testing.assert_allclose(mix.mean(), mean, rtol=1e-12)
    np.testing.assert_allclose(mix.std(), np.sqrt(var), rtol=1e-12)
    np.testing.assert_allclose(
        mix.cdf(np.zeros(2)), 0.75 * a.cdf(np.zeros(2)) + 0.25 * b.cdf(np.zeros(2))
    )
    np.testing.assert_allclose(mix.prob_up(), 0.75 * a.prob_up() + 0.25 * b.prob_up())
    assert mix.valid().all()
    assert mix.select(slice(1, 2)).mean().shape == (1,)


def test_mixture_quantiles_follow_the_weights() -> None:
    mix, a, _ = _two_clusters()
    q = mix.quantile([0.2, 0.3, 0.5])
    assert q.shape == (3, 2)
    # 25 % of the mass sits near -10 and 75 % near +10: the 20 % quantile is in b, 30 % in a
    assert (q[0] < 0).all() and (q[1] > 0).all()
    # the 50 % mixture quantile is the (0.5 - 0.25) / 0.75 quantile of a (clusters are disjoint)
    np.testing.assert_allclose(q[2], a.quantile(1 / 3), atol=0.02)
    assert mix.quantile(0.5).shape == (2,)


def test_weighted_quantile_is_the_midpoint_rule() -> None:
    x = _samples((37,), 4)
    levels = np.array([0.01, 0.05, 0.5, 0.9, 0.99])
    equal = weighted_quantile(x, np.full(37, 1 / 37), levels)
    np.testing.assert_allclose(equal, np.quantile(x, levels, method="hazen"), rtol=1e-12)
    # sorted values 1, 2, 3 with weights 2, 1, 1 sit at F = 0.25, 0.625, 0.875
    v, w = np.array([3.0, 1.0, 2.0]), np.array([1.0, 2.0, 1.0])
    got = weighted_quantile(v, w, np.array([0.1, 0.25, 0.5, 0.875, 0.95]))
    np.testing.assert_allclose(got, [1.0, 1.0, 1.0 + 0.25 / 0.375, 3.0, 3.0])


def test_mixture_draws_allocate_by_weight_and_are_reproducible() -> None:
    mix, a, b = _two_clusters()
    draws = mix.draw(101, np.random.default_rng(0))
    assert draws.samples.shape == (2, 101)
    # largest remainder: 75.75 → 76 from a, 25.25 → 25 from b (b is the cluster below 0)
    np.testing.assert_array_equal((draws.samples < 0).sum(axis=-1), [25, 25])
    assert np.isin(draws.samples[0], np.concatenate([a.samples[0], b.samples[0]])).all()
    again = mix.draw(101, np.random.default_rng(0))
    np.testing.assert_array_equal(draws.samples, again.samples)
    many = mix.draw(1000, np.random.default_rng(1))  # more than b has: drawn with replacement
    assert ((many.samples < 0).sum(axis=-1) == 250).all()


def test_mixture_refuses_bad_weights_and_shapes() -> None:
    a = SampleForecast.of(_samples((2, 10)))
    with pytest.raises(ValueError, match="weight"):
        MixtureForecast.of([a, a], [0.5])
    with pytest.raises(ValueError, match="weight"):
        MixtureForecast.of([a, a], [1.0, 0.0])
    with pytest.raises(ValueError, match="weight"):
        MixtureForecast.of([a, a], [0.7, 0.7])
    with pytest.raises(ValueError, match="leading shape"):
        MixtureForecast.of([a, SampleForecast.of(_samples((3, 10)))], [0.5, 0.5])


def test_every_container_reports_the_shared_estimators() -> None:
    x = _samples((2, 3, 64), 5)
    shared = summarize(SampleForecast.of(x))
    # the model's tensor view (float32)
    out = ForecastOutput((5, 15, 60), torch.from_numpy(x.astype(np.float32)))
    s32 = summarize(SampleForecast.of(x.astype(np.float32)))
    for name in ("mean", "std", "q05", "q50", "q95"):
        np.testing.assert_array_equal(
            getattr(out, name).numpy(), np.asarray(getattr(s32, name), dtype=np.float32)
        )
    np.testing.assert_array_equal(out.for_horizon(15).q95.numpy(), out.q95[:, 1].numpy())
    # the service's price-unit view
    pred = SSSDPrediction.from_samples(
        {h: x[0, j] for j, h in enumerate((5, 15, 60))},
        asset="EURUSD",
        timestamp=pd.Timestamp("2024-01-02 10:00", tz="UTC"),
        last_close=1.1,
        inference_time_ms=1.0,
        model_name="m",
        pip_size=1e-4,
    )
    for name in ("mean", "std", "q05", "q50", "q95"):
        assert list(getattr(pred, name).values()) == getattr(shared, name)[0].tolist()
    assert pred.prob_up(60) == SampleForecast.of(x[0]).prob_up()[2]
    np.testing.assert_array_equal(pred.forecast().samples, x[0])
    with pytest.raises(KeyError, match="horizons"):
        pred.forecast([5, 30])
    # the evaluation's time-indexed container
    times = pd.date_range("2024-01-02", periods=2, freq="5min", tz="UTC")
    dist = ForecastDistribution.from_samples("m", times, (5, 15, 60), x)
    np.testing.assert_array_equal(dist.quantile(np.array(SUMMARY_LEVELS))[1], shared.q50)
    np.testing.assert_array_equal(dist.std(), shared.std)
    y = x[..., 0]
    np.testing.assert_array_equal(dist.cdf(y), SampleForecast.of(x).cdf(y))
