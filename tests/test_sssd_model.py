"""SSSDModel: loss, noise handling, batched sampling, parameter groups, streaming, real data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from forex_diffusion.models.build import build_sssd_model
from forex_diffusion.models.s4_layer import S4D
from forex_diffusion.models.sssd import SSSDModel, summarize_samples
from sssd_test_utils import TINY_FEATURE_DIMS, random_features, tiny_config

torch.set_num_threads(1)

CONFIG = tiny_config()  # the window lengths of the test features


def _model(extra: tuple[str, ...] = (), seed: int = 0) -> SSSDModel:
    torch.manual_seed(seed)
    return build_sssd_model(tiny_config(extra), TINY_FEATURE_DIMS)


def _batch(model: SSSDModel, b: int = 5, seed: int = 0):
    feats = random_features(CONFIG, TINY_FEATURE_DIMS, b, seed)
    y = torch.randn(b, len(model.horizons), 1, generator=torch.Generator().manual_seed(seed + 1))
    return feats, y


def _randomize_output_layer(model: SSSDModel) -> None:
    with torch.no_grad():
        model.head.out.weight.normal_(0, 0.5)


# ---------------------------------------------------------------------------- loss


def test_loss_is_the_weighted_mean_of_per_horizon_losses() -> None:
    model = _model()
    feats, y = _batch(model)
    out = model(feats, y, generator=torch.Generator().manual_seed(0))
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    assert out.per_horizon.shape == (4,)
    w = torch.tensor(model.config.loss.horizon_weights)
    assert torch.allclose(out.loss, (w * out.per_horizon).sum() / w.sum(), atol=1e-6)
    assert torch.equal(out.consistency_loss, torch.zeros(()))


def test_untrained_loss_matches_the_target_variance() -> None:
    """The zero-initialised head predicts 0, so the v-loss is E[v²] = ᾱ + (1-ᾱ)·E[x0²]."""
    model = _model()
    feats, y = _batch(model, b=64)
    t, eps = model.draw_noise(64, torch.Generator().manual_seed(3))
    out = model(feats, y, timesteps=t, noise=eps)
    v = model.scheduler.velocity(y[..., 0][:, None, :].expand_as(eps), eps, t)
    assert torch.allclose(out.per_horizon, (v**2).mean(dim=(0, 1)).float(), atol=1e-5)


def test_fixed_timesteps_and_noise_make_the_loss_deterministic() -> None:
    model = _model()
    model.eval()  # no dropout
    feats, y = _batch(model)
    t, eps = model.draw_noise(5, torch.Generator().manual_seed(7), noise_draws=1)
    assert t.shape == (5, 1, 4) and eps.shape == (5, 1, 4) and t.dtype == torch.long
    assert model.draw_noise(5)[0].shape == (5, model.config.loss.noise_draws, 4)
    a = model(feats, y, timesteps=t, noise=eps).loss
    b = model(feats, y, timesteps=t[:, 0], noise=eps[:, 0]).loss  # (B, H) form
    c = model(feats, y, timesteps=t, noise=eps[:, 0, :, None]).loss  # (B, H, 1) noise
    assert torch.equal(a, b) and torch.equal(a, c)
    _randomize_output_layer(model)
    d = model(feats, y, timesteps=t, noise=eps).loss
    e = model(feats, y, timesteps=t, noise=-eps).loss
    assert not torch.equal(d, e)


def test_several_noise_draws_per_encoder_pass() -> None:
    model = _model(("model.loss.noise_draws=3",))
    feats, y = _batch(model)
    calls = []
    model.encoder.register_forward_hook(lambda *_: calls.append(1))
    t, eps = model.draw_noise(5, torch.Generator().manual_seed(1))
    assert t.shape == (5, 3, 4)
    out = model(feats, y, timesteps=t, noise=eps)
    assert len(calls) == 1 and torch.isfinite(out.loss)
    # draws are averaged: repeating the same draw three times gives the one-draw loss
    same_t, same_eps = t[:, :1].expand(5, 3, 4), eps[:, :1].expand(5, 3, 4)
    model.eval()
    one = model(feats, y, timesteps=t[:, :1], noise=eps[:, :1]).loss
    three = model(feats, y, timesteps=same_t, noise=same_eps).loss
    assert torch.allclose(one, three, atol=1e-6)


def test_horizon_indices_select_embeddings_and_weights() -> None:
    model = _model()
    _randomize_output_layer(model)
    model.eval()
    feats, _ = _batch(model, b=3)
    y = torch.randn(3, 2, 1)
    t = torch.randint(0, 1000, (3, 1, 2), generator=torch.Generator().manual_seed(0))
    eps = torch.randn(3, 1, 2, generator=torch.Generator().manual_seed(1))
    idx = torch.tensor([[1, 3]] * 3)
    out = model(feats, y, idx, timesteps=t, noise=eps)
    w = torch.tensor(model.config.loss.horizon_weights)[[1, 3]]
    assert torch.allclose(out.loss, (w * out.per_horizon).sum() / w.sum(), atol=1e-6)
    other = model(feats, y, torch.tensor([[0, 2]] * 3), timesteps=t, noise=eps)
    assert not torch.allclose(out.per_horizon, other.per_horizon)
    with pytest.raises(ValueError, match="horizon_indices"):
        model(feats, y, torch.tensor([[0, 4]] * 3))
    with pytest.raises(ValueError, match="horizon columns"):
        model(feats, y)  # 2 columns but 4 horizons and no indices


def test_consistency_term() -> None:
    model = _model(("model.loss.consistency_weight=0.5",))
    _randomize_output_layer(model)
    model.eval()
    feats, y = _batch(model)
    t, eps = model.draw_noise(5, torch.Generator().manual_seed(2))
    out = model(feats, y, timesteps=t, noise=eps)
    assert out.consistency_loss > 0
    assert torch.allclose(out.loss, out.diffusion_loss + 0.5 * out.consistency_loss)
    # for v-prediction ᾱ(x̂0 - x0)² = ᾱ(1-ᾱ)(v̂ - v)²: check against that identity
    ab = model.scheduler.alphas_cumprod.float()[t]
    x0 = y[..., 0][:, None, :].expand_as(eps)
    x_t = model.scheduler.add_noise(x0, eps, t)
    v = model.scheduler.velocity(x0, eps, t)
    w = model.horizon_weights[None, None, :]
    context = model.encode(feats)
    cond = model.head.condition_film(model.conditioning(context, torch.arange(4).expand(5, 4)))
    pred = model.head.denoise(x_t[..., None], cond[:, None] + model.head.time_film_of(t))[..., 0]
    expected = (ab * (1 - ab) * (pred - v) ** 2 * w).sum() / (w.sum() * 5 * t.shape[1])
    assert torch.allclose(out.consistency_loss, expected, rtol=1e-4)


def test_bad_inputs_raise_clear_errors() -> None:
    model = _model()
    feats, y = _batch(model)
    with pytest.raises(ValueError, match="timeframes"):
        model({k: v for k, v in feats.items() if k != "4h"}, y)
    bad = dict(feats)
    bad["1h"] = torch.randn(5, 6, 7)
    with pytest.raises(ValueError, match=r"features\['1h'\]"):
        model(bad, y)
    with pytest.raises(ValueError, match="timesteps"):
        model(feats, y, timesteps=torch.zeros(5, 3, dtype=torch.long))


# ---------------------------------------------------------------------------- parameters


def test_param_groups_split_ssm_dt_and_a_from_everything_else() -> None:
    model = _model()
    ssm, other = model.param_groups()
    s4_layers = [m for m in model.modules() if isinstance(m, S4D)]
    assert len(s4_layers) == 4 * 2  # 4 timeframes × 2 layers
    expected = {id(p) for m in s4_layers for p in (m.log_dt, m.log_A_real, m.A_imag)}
    assert {id(p) for p in ssm} == expected
    assert not expected & {id(p) for p in other}
    assert {id(p) for p in ssm} | {id(p) for p in other} == {id(p) for p in model.parameters()}
    assert all(id(p) not in expected for m in s4_layers for p in (m.C, m.D))


def test_weight_decay_skips_norms_biases_and_the_head_output() -> None:
    model = _model()
    _, other = model.param_groups()
    decayed, not_decayed = model.decay_split()
    ids = lambda ps: {id(p) for p in ps}  # noqa: E731
    assert ids(decayed) | ids(not_decayed) == ids(other)
    assert not ids(decayed) & ids(not_decayed)
    assert all(p.ndim >= 2 for p in decayed)
    assert ids(model.head.out.parameters()) <= ids(not_decayed)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(id(p) in ids(not_decayed) for m in norms for p in m.parameters())


def test_gradients_reach_every_parameter() -> None:
    model = _model(("model.loss.consistency_weight=0.1",))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    feats, y = _batch(model, b=8)
    for step in range(2):  # the zero output layer blocks upstream gradients on the first step
        opt.zero_grad()
        model(feats, y, generator=torch.Generator().manual_seed(step)).loss.backward()
        opt.step()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_cross_attention_feeds_the_context_and_can_be_switched_off() -> None:
    model = _model()
    model.eval()
    feats, _ = _batch(model)
    with torch.no_grad():
        base = model.encode(feats)
        assert model.encoder.attn is not None
        model.encoder.attn.out_proj.weight.add_(0.5)
        assert not torch.allclose(model.encode(feats), base, atol=1e-4)
    ablated = _model(("model.encoder.cross_attention=false",))
    assert ablated.encoder.attn is None
    assert not any("attn" in n for n, _ in ablated.named_parameters())
    out = ablated(*_batch(ablated))
    assert torch.isfinite(out.loss)


# ---------------------------------------------------------------------------- inference


def test_inference_runs_encoder_once_and_head_once_per_step_on_all_samples() -> None:
    model = _model()
    _randomize_output_layer(model)
    feats, _ = _batch(model, b=3)
    enc_calls: list[int] = []
    model.encoder.register_forward_hook(lambda *_: enc_calls.append(1))
    shapes: list[tuple[int, ...]] = []
    original = model.head.denoise

    def counting_denoise(x: torch.Tensor, film: torch.Tensor) -> torch.Tensor:
        shapes.append(tuple(x.shape))
        return original(x, film)

    model.head.denoise = counting_denoise  # type: ignore[method-assign]
    fc = model.inference_forward(feats, num_samples=50, sampler="dpmpp_2m", steps=7, eta=0.0)
    assert len(enc_calls) == 1
    assert shapes == [(3 * 4, 50, 1)] * 7  # one call per step: batch × horizons × samples
    assert fc.samples.shape == (3, 4, 50)


def test_forecast_summaries_match_samples_and_generator_reproduces() -> None:
    model = _model()
    _randomize_output_layer(model)
    feats, _ = _batch(model, b=2)
    fc = model.inference_forward(feats, 64, "ddim", 10, 0.0, torch.Generator().manual_seed(1))
    again = model.inference_forward(feats, 64, "ddim", 10, 0.0, torch.Generator().manual_seed(1))
    other = model.inference_forward(feats, 64, "ddim", 10, 0.0, torch.Generator().manual_seed(2))
    assert torch.equal(fc.samples, again.samples) and not torch.equal(fc.samples, other.samples)
    assert fc.horizons == (5, 15, 60, 240)
    assert torch.allclose(fc.mean, fc.samples.mean(-1))
    assert torch.allclose(fc.std, fc.samples.std(-1))
    assert torch.allclose(fc.q50, fc.samples.quantile(0.5, dim=-1))
    assert (fc.q05 <= fc.q50).all() and (fc.q50 <= fc.q95).all()
    h60 = fc.for_horizon(60)
    assert torch.equal(h60.samples, fc.samples[:, 2]) and h60.horizon_minutes == 60
    assert set(fc.by_horizon()) == {5, 15, 60, 240}
    with pytest.raises(KeyError):
        fc.for_horizon(30)
    mean, std, q05, q50, q95 = summarize_samples(fc.samples)
    assert torch.equal(mean, fc.mean) and torch.equal(std, fc.std) and torch.equal(q05, fc.q05)
    assert torch.equal(q50, fc.q50) and torch.equal(q95, fc.q95)


def test_sampling_settings_come_from_the_caller_and_mode_is_restored() -> None:
    config = tiny_config(
        ("inference.num_samples=12", "inference.steps=3", "inference.sampler=ddpm")
    )
    torch.manual_seed(0)
    model = build_sssd_model(config, TINY_FEATURE_DIMS)
    model.train()
    feats, _ = _batch(model, b=1)
    icfg = config.inference
    fc = model.inference_forward(
        feats, icfg.num_samples, icfg.sampler, icfg.steps, icfg.eta, horizon_indices=[0, 3]
    )
    assert fc.samples.shape == (1, 2, 12) and fc.horizons == (5, 240)
    assert model.training
    for sampler in ("ddim", "ddpm", "dpmpp_2m"):
        out = model.inference_forward(feats, 8, sampler, 4, 0.0)  # type: ignore[arg-type]
        assert torch.isfinite(out.samples).all()


def test_untrained_head_sampling_v_is_stable_epsilon_amplifies() -> None:
    """Why v is the default: a zero head is the exact v of N(0, 1) data, so an untrained v-model
    samples ≈ N(0, 1); the same zero head under ε-prediction gives x̂0 = x_T/√ᾱ_T (≈ 2e4·x_T)."""
    feats = _batch(_model(), b=1)[0]
    v_model = _model()
    fc = v_model.inference_forward(
        feats, 400, "dpmpp_2m", 20, 0.0, generator=torch.Generator().manual_seed(0)
    )
    assert 0.85 < float(fc.samples.std()) < 1.15
    eps_model = _model(("model.diffusion.prediction=epsilon",))
    fc = eps_model.inference_forward(
        feats, 400, "dpmpp_2m", 20, 0.0, generator=torch.Generator().manual_seed(0)
    )
    assert torch.isfinite(fc.samples).all() and float(fc.samples.std()) > 100


# ---------------------------------------------------------------------------- streaming


def test_streaming_update_equals_encoder_on_the_grown_windows() -> None:
    model = _model()
    model.eval()
    feats = random_features(CONFIG, TINY_FEATURE_DIMS, 2, seed=4, extra_bars=3)
    window = {tf: x[:, :-3] for tf, x in feats.items()}
    with torch.inference_mode():
        stream = model.start_stream(window)
        assert torch.allclose(stream.context(), model.encode(window), atol=1e-5)
        grown = dict(window)
        for k in range(3):  # three new 5m bars, and one new 15m bar after the second
            stream.update("5m", feats["5m"][:, -3 + k])
            grown["5m"] = feats["5m"][:, : feats["5m"].shape[1] - 2 + k]
            if k == 1:
                stream.update("15m", feats["15m"][:, -3])
                grown["15m"] = feats["15m"][:, :-2]
            assert torch.allclose(stream.context(), model.encode(grown), atol=1e-4), k
        # the per-position outputs of the 5m stack agree as well
        seq = model.encoder.timeframe_encoder("5m").sequence(grown["5m"])
        assert torch.allclose(stream.summaries["5m"], seq[:, -1], atol=1e-4)
        assert stream.bars_seen == {"5m": 3, "15m": 1, "1h": 0, "4h": 0}
        fc = model.sample_from_context(stream.context(), 16, "ddim", 5, 0.0)
    assert fc.samples.shape == (2, 4, 16)
    with pytest.raises(ValueError, match="unknown timeframe"):
        stream.update("30m", feats["5m"][:, -1])


def _advance_case(model: SSSDModel, feats: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Contexts of ``advance`` over a live sequence: one 5m bar, then 5m and 15m closing
    together, then 5m, 15m, 1h and 4h together; plus the final states of every stack."""
    window = {tf: x[:, :-3] for tf, x in feats.items()}
    with torch.inference_mode():
        stream = model.start_stream(window)
        closes = [["5m"], ["5m", "15m"], ["5m", "15m", "1h", "4h"]]
        used = dict.fromkeys(feats, 0)
        out = []
        for group in closes:
            bars = []
            for tf in group:
                bars.append((tf, feats[tf][:, -3 + used[tf]]))
                used[tf] += 1
            out.append(stream.advance(bars))
        assert stream.bars_seen == {"5m": 3, "15m": 2, "1h": 1, "4h": 1}
        out.extend(s for tf in model.timeframes for s in stream.states[tf])
        out.extend(stream.summaries[tf] for tf in model.timeframes)
    return out


def test_advance_is_update_then_context() -> None:
    model = _model().eval()
    feats = random_features(CONFIG, TINY_FEATURE_DIMS, 2, seed=4, extra_bars=3)
    got = _advance_case(model, feats)
    window = {tf: x[:, :-3] for tf, x in feats.items()}
    with torch.inference_mode():
        stream = model.start_stream(window)
        stream.update("5m", feats["5m"][:, -3])
        assert torch.equal(got[0], stream.context())
        stream.update("5m", feats["5m"][:, -2])
        stream.update("15m", feats["15m"][:, -3])
        assert torch.equal(got[1], stream.context())
        assert torch.equal(stream.advance([]), stream.context())


@pytest.mark.slow
def test_compiled_advance_agrees_with_eager() -> None:
    """``compile_stream``: the compiled real-arithmetic step and fusion give the eager contexts,
    states and summaries, for one bar and for several timeframes closing together."""
    model = _model().eval()
    feats = random_features(CONFIG, TINY_FEATURE_DIMS, 2, seed=4, extra_bars=3)
    eager = _advance_case(model, feats)
    model.compile_stream()
    steps = model.encoder.compiled_step_and_fuse
    assert steps is not None
    compiled = _advance_case(model, feats)
    assert sorted(key[0] for key in steps.runners) == sorted(model.timeframes)  # one each
    _assert_all_close(compiled, eager)

    # new weights (replaced, or changed in place): the next stream compiles for them
    window = {tf: x[:, :-1] for tf, x in feats.items()}

    def one_bar() -> torch.Tensor:
        with torch.inference_mode():
            return model.start_stream(window).advance([("5m", feats["5m"][:, -1])])

    before = one_bar()
    block = model.encoder.timeframe_encoder("5m").block_list()[0]
    for change in ("replace", "in place"):
        with torch.no_grad():
            if change == "replace":
                block.out.weight = torch.nn.Parameter(block.out.weight * 1.5)
            else:
                block.out.bias.add_(0.25)
        model.encoder.compiled_step_and_fuse = None
        want = one_bar()  # eager
        model.encoder.compiled_step_and_fuse = steps
        got = one_bar()
        assert torch.allclose(got, want, atol=1e-5, rtol=1e-4), change
        assert model.encoder.compiled_step_and_fuse is not steps, change
        assert not torch.allclose(want, before, atol=1e-3), change
        steps, before = model.encoder.compiled_step_and_fuse, got


def _assert_all_close(got: list[torch.Tensor], want: list[torch.Tensor]) -> None:
    assert len(got) == len(want)
    for c, e in zip(got, want, strict=True):
        assert c.dtype == e.dtype
        assert torch.allclose(c, e, atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------------------- precision


def test_bf16_autocast_training_step_is_finite() -> None:
    model = _model()
    feats, y = _batch(model, b=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(feats, y, generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# ---------------------------------------------------------------------------- real data


def test_short_training_run_on_real_eurusd_has_no_nan(fx_dir: Path) -> None:
    """Default-size model, real features (the project's pipeline), 12 AdamW steps incl. bf16."""
    from forex_diffusion.dataset.source import build_feature_source
    from forex_diffusion.dataset.windows import SSSDTimeSeriesDataset
    from sssd_test_utils import default_config

    df = pd.read_csv(
        fx_dir / "EURUSD_M1_2019.csv.gz", nrows=40_000, parse_dates=["timestamp"], index_col=0
    )
    config = default_config()
    dataset = SSSDTimeSeriesDataset.from_source(build_feature_source(df, config), config)
    assert len(dataset) > 1000
    torch.manual_seed(0)
    model = build_sssd_model(config, dataset.n_features)
    ssm, other = model.param_groups()
    opt = torch.optim.AdamW(
        [{"params": other, "lr": 1e-3}, {"params": ssm, "lr": 1e-3, "weight_decay": 0.0}]
    )
    g = torch.Generator().manual_seed(0)
    losses = []
    for step in range(12):
        idx = torch.randint(0, len(dataset), (8,), generator=g).tolist()
        feats, y, hidx = dataset.get_batch(idx)
        assert all(torch.isfinite(v).all() for v in feats.values()) and torch.isfinite(y).all()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=step % 2 == 1):
            out = model(feats, y, hidx, generator=g)
        opt.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(out.loss.detach()))
        assert torch.isfinite(out.loss), f"step {step}: loss {out.loss}"
    assert all(torch.isfinite(p).all() for p in model.parameters())
    feats, _, _ = dataset.get_batch([0, len(dataset) - 1])
    fc = model.inference_forward(feats, 16, "ddim", 5, 0.0, generator=g)
    assert torch.isfinite(fc.samples).all()


def test_inference_rejects_non_finite_features_and_accepts_cpu_generator() -> None:
    model = _model()
    feats, _ = _batch(model, b=2)
    bad = {k: v.clone() for k, v in feats.items()}
    bad["15m"][1, 3, 0] = float("nan")
    with pytest.raises(ValueError, match=r"features\['15m'\] contain NaN.*\[1, 3, 0\]"):
        model.inference_forward(bad, 8, "ddim", 2, 0.0)
    t, eps = model.draw_noise(2, torch.Generator(device="cpu").manual_seed(0), device="cpu")
    assert t.device.type == "cpu" and eps.shape == (2, 4, 4)
