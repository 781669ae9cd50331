"""Speed-up paths (issue 17): unchanged fixed-seed forecast, inference head = training head,
compiled = eager sampling, and the few-step sampler's quality against the 20-step one."""

from __future__ import annotations

import itertools
import json
import math
from typing import cast

import pytest
import torch
from scipy.stats import norm

from forex_diffusion.config.sssd_config import SSSDConfig
from forex_diffusion.dataset.collate import ASSET_KEY
from forex_diffusion.models.build import build_sssd_model
from forex_diffusion.models.diffusion_head import DiffusionHead
from forex_diffusion.models.diffusion_scheduler import DiffusionScheduler, v_from_eps
from forex_diffusion.models.sssd import EncoderKey, SamplingKey, SSSDModel
from speed_reference import (
    REFERENCE,
    TRAINING_REFERENCE,
    fixed_seed_forecast,
    fixed_seed_training_losses,
)
from sssd_test_utils import TINY_FEATURE_DIMS, random_features, tiny_config

torch.set_num_threads(1)


def test_fixed_seed_forecast_equals_the_checked_in_reference() -> None:
    """Reference written by tests/speed_reference.py on the commit before the speed-ups."""
    reference = torch.tensor(json.loads(REFERENCE.read_text()))
    got = fixed_seed_forecast()
    assert got.shape == reference.shape == (2, 4, 16)
    assert torch.allclose(got, reference, atol=1e-5, rtol=1e-5)


def test_fixed_seed_training_equals_the_checked_in_reference() -> None:
    """Four optimizer steps of a model with dropout in every block, against losses written by
    tests/speed_reference.py on the commit before the training speed-ups: the same dropout
    masks, and arithmetic that differs only within float tolerance (FFT lengths)."""
    reference = json.loads(TRAINING_REFERENCE.read_text())
    got = fixed_seed_training_losses()
    assert len(got) == len(reference) == 5
    assert got == pytest.approx(reference, rel=1e-5, abs=0)


def test_channel_major_dropout_draws_the_mask_in_channel_major_order() -> None:
    """The mask of a (B, L, H) tensor is the one ``F.dropout`` draws for its (B, H, L) copy."""
    from forex_diffusion.models.sssd_encoder import channel_major_dropout

    z = torch.randn(3, 7, 5)
    torch.manual_seed(11)
    got = channel_major_dropout(z, 0.4, training=True)
    torch.manual_seed(11)
    want = torch.nn.functional.dropout(z.transpose(1, 2).contiguous(), 0.4, True).transpose(1, 2)
    assert torch.equal(got, want)
    assert torch.equal(channel_major_dropout(z, 0.4, training=False), z)
    flat = torch.randn(3, 5)  # a last-position (B, H) tensor: plain dropout
    torch.manual_seed(12)
    got_flat = channel_major_dropout(flat, 0.4, training=True)
    torch.manual_seed(12)
    assert torch.equal(got_flat, torch.nn.functional.dropout(flat, 0.4, True))


def test_inference_head_path_equals_the_module_path() -> None:
    """``denoise`` without autograd (functional, in-place) = the block modules with autograd."""
    torch.manual_seed(0)
    head = DiffusionHead(cond_dim=6, hidden_dim=16, n_blocks=3, timestep_embedding_dim=8).eval()
    with torch.no_grad():
        head.out.weight.normal_(0, 0.5)
    x = torch.randn(5, 7, 1)
    film = head.condition_film(torch.randn(5, 1, 6)) + head.time_film_of(torch.tensor([300]))
    with torch.enable_grad():
        slow = head.denoise(x, film)
    with torch.inference_mode():
        fast = head.denoise(x, film)
    assert torch.equal(fast, slow.detach())


def _tiny_model_and_features() -> tuple[SSSDConfig, SSSDModel, dict[str, torch.Tensor]]:
    """A tiny eval-mode model whose head output is not zero, and features of two windows."""
    torch.manual_seed(0)
    config = tiny_config()
    model = build_sssd_model(config, TINY_FEATURE_DIMS).eval()
    with torch.no_grad():
        model.head.out.weight.normal_(0, 0.5)
    return config, model, random_features(config, TINY_FEATURE_DIMS, 2, seed=1)


@pytest.mark.slow
def test_compiled_sampling_agrees_with_eager() -> None:
    _, model, feats = _tiny_model_and_features()

    def forecast() -> torch.Tensor:
        gen = torch.Generator().manual_seed(7)
        return model.inference_forward(feats, 32, "dpmpp_2m", 10, 0.0, gen).samples

    eager = forecast()
    model.compile_sampling()
    compiled = forecast()
    assert torch.allclose(compiled, eager, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_compiled_sampling_only_for_the_keys_given() -> None:
    """``compile_sampling(only=...)``: the listed key samples through the compiled loop (the
    same samples as eager), any other shape or sampler eagerly, compiling nothing new."""
    from torch._dynamo.utils import counters

    config, model, feats = _tiny_model_and_features()

    def forecast(batch: int, sampler: str, eta: float = 0.0) -> torch.Tensor:
        gen = torch.Generator().manual_seed(7)
        part = {tf: x[:batch] for tf, x in feats.items()}
        return model.inference_forward(part, 32, sampler, 10, eta, gen).samples  # type: ignore[arg-type]

    cases = [(1, "dpmpp_2m_logsnr", 0.0), (2, "dpmpp_2m_logsnr", 0.0), (1, "ddim", 0.5)]
    eager = [forecast(*c) for c in cases]
    horizons = len(config.data.horizons)
    model.compile_sampling(only={SamplingKey(horizons, 32, "dpmpp_2m_logsnr", 10)})
    counters.clear()
    assert torch.allclose(forecast(*cases[0]), eager[0], atol=1e-4, rtol=1e-4)
    compiled_frames = counters["stats"]["unique_graphs"]
    assert compiled_frames >= 1
    for case, ref in zip(cases[1:], eager[1:], strict=True):
        assert torch.equal(forecast(*case), ref)  # eager: bit for bit
    assert counters["stats"]["unique_graphs"] == compiled_frames


def test_encoder_with_kernels_handed_in_equals_the_cached_path() -> None:
    """``MultiTimeframeEncoder.forward(features, inference_kernels(features))`` (what the compiled
    encoder runs) = ``forward(features)``, bit for bit."""
    _, model, feats = _tiny_model_and_features()
    with torch.inference_mode():
        kernels = model.encoder.inference_kernels(feats)
        assert [len(k) for k in kernels.values()] == [model.config.encoder.n_layers] * len(feats)
        assert torch.equal(model.encoder(feats, kernels), model.encoder(feats))


@pytest.mark.slow
@pytest.mark.parametrize("global_model", [False, True])
def test_compiled_encoder_agrees_with_eager_for_the_keys_given(global_model: bool) -> None:
    """``compile_encoder(only=...)``: windows of the listed shape are encoded by the compiled
    forward (the eager context within float tolerance, a global model's asset embedding
    included), any other batch size eagerly (bit for bit, compiling nothing)."""
    config, model, feats = _tiny_model_and_features()
    if global_model:
        torch.manual_seed(0)
        config = config.with_overrides(["model.assets=[EURUSD, GBPUSD]"])
        model = build_sssd_model(config, TINY_FEATURE_DIMS).eval()
        with torch.no_grad():
            cast(torch.nn.Embedding, model.asset_embedding).weight.normal_()
        feats = {**feats, ASSET_KEY: torch.tensor([2, 1])}
    one = {k: x[:1] for k, x in feats.items()}
    with torch.inference_mode():
        eager_one, eager_two = model.encode(one), model.encode(feats)
        lengths = tuple(config.data.lookbacks[tf] for tf in model.timeframes)
        model.compile_encoder(only={EncoderKey(1, lengths)})
        compiled, calls = model._compiled_encoder, []
        assert compiled is not None
        model._compiled_encoder = lambda *args: calls.append(1) or compiled(*args)
        compiled_one = model.encode(one)
        assert len(calls) == 1
        assert torch.allclose(compiled_one, eager_one, atol=1e-5, rtol=1e-4)
        assert torch.equal(model.encode(feats), eager_two)
        assert len(calls) == 1


def _exact_gaussian_v(sch: DiffusionScheduler, s: float):
    """Exact v̂ of a N(0, s²) target."""

    def model_fn(x: torch.Tensor, i: int, t: int) -> torch.Tensor:
        ab = float(sch.alphas_cumprod[t])
        sa, s1 = math.sqrt(ab), math.sqrt(1 - ab)
        return v_from_eps(s1 * x / (ab * s * s + 1 - ab), x, sa, s1)

    return model_fn


def _expected_crps_and_coverage(sigma: float, s: float) -> tuple[float, float]:
    """E CRPS of the forecast N(0, σ²) for outcomes y ~ N(0, s²), and the probability that y lies
    in its central 90 % interval (closed form)."""
    crps = math.sqrt(2 / math.pi) * math.sqrt(sigma**2 + s**2) - sigma / math.sqrt(math.pi)
    coverage = 2 * norm.cdf(norm.ppf(0.95) * sigma / s) - 1
    return crps, coverage


def _sigma(sch: DiffusionScheduler, sampler: str, steps: int, s: float) -> float:
    """The deterministic samplers with the exact denoiser are x0 = c·x_T: the forecast is
    N(0, c²); returns |c|."""
    x_T = torch.randn(4000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x0 = sch.sample(_exact_gaussian_v(sch, s), x_T, sampler, steps)  # type: ignore[arg-type]
    return abs(float((x0 * x_T).sum() / (x_T * x_T).sum()))


@pytest.mark.parametrize("s", [0.3, 0.7, 1.0, 1.3])
def test_logsnr_sampler_at_10_steps_keeps_crps_and_coverage_of_the_20_step_sampler(
    s: float,
) -> None:
    """CRPS within 1 % and 90 % coverage within 1 point of the shipped dpmpp_2m-20."""
    sch = DiffusionScheduler(1000, prediction="v")
    crps20, cov20 = _expected_crps_and_coverage(_sigma(sch, "dpmpp_2m", 20, s), s)
    crps10, cov10 = _expected_crps_and_coverage(_sigma(sch, "dpmpp_2m_logsnr", 10, s), s)
    assert crps10 <= crps20 * 1.01
    assert abs(cov10 - cov20) <= 0.01


def test_logsnr_sampler_keeps_the_spread_of_narrow_targets_that_trailing_steps_lose() -> None:
    """Trailing steps jump to the clean estimate from step T/steps - 1 and drop Var(x0 | x_t):
    a narrow target comes out far too narrow; the log-SNR levels end near the clean end."""
    sch = DiffusionScheduler(1000, prediction="v")
    s = 0.15
    trailing = _sigma(sch, "dpmpp_2m", 10, s) / s
    logsnr = _sigma(sch, "dpmpp_2m_logsnr", 10, s) / s
    assert trailing < 0.75
    assert abs(logsnr - 1) < abs(_sigma(sch, "dpmpp_2m", 20, s) / s - 1)
    assert 0.9 < logsnr < 1.05


@pytest.mark.parametrize("train_steps", [30, 1000])
@pytest.mark.parametrize("steps", [1, 2, 3, 8, 10, 25])
def test_logsnr_plan_starts_at_pure_noise_and_is_strictly_decreasing(
    train_steps: int, steps: int
) -> None:
    sch = DiffusionScheduler(train_steps, prediction="v")
    plan = sch.plan("dpmpp_2m_logsnr", steps)
    ts = [st.t for st in plan]
    assert len(ts) == steps and ts[0] == train_steps - 1
    assert all(a > b >= 0 for a, b in itertools.pairwise(ts))
    assert plan[-1].t_prev == -1 and [st.index for st in plan] == list(range(steps))
    assert all(st.t_prev == nxt.t for st, nxt in itertools.pairwise(plan))
