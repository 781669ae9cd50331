"""S4D layer: kernel, FFT convolution, recurrent mode, streaming, gradients, caching, precision."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from forex_diffusion.models.s4_layer import (
    S4D,
    CausalFFTConv,
    S4DStream,
    causal_fft_conv,
    fast_fft_len,
    hippo_legs_diagonal_imag,
    init_a,
    rfft_last,
    s4d_step_real,
)

torch.set_num_threads(1)


def _layer(h: int = 6, n: int = 16, init: str = "s4d_lin", seed: int = 0) -> S4D:
    torch.manual_seed(seed)
    # dt up to 0.5 so that oscillations and decay are both visible within short sequences
    return S4D(h, n, init, dt_min=1e-2, dt_max=0.5)  # type: ignore[arg-type]


def _reference_kernel(layer: S4D, length: int) -> torch.Tensor:
    """K[h, l] = 2 Re(C_n B̄_n exp(l·dt·A_n)) with complex128 exponentials (independent formula)."""
    dt = torch.exp(layer.log_dt.detach().double())[:, None]
    a = torch.complex(
        -torch.exp(layer.log_A_real.detach().double()), layer.A_imag.detach().double()
    )
    c = torch.complex(layer.C.detach()[..., 0].double(), layer.C.detach()[..., 1].double())
    b_bar = (torch.exp(dt * a) - 1) / a
    powers = torch.exp(dt[..., None] * a[..., None] * torch.arange(length, dtype=torch.float64))
    return 2 * (c[..., None] * b_bar[..., None] * powers).sum(1).real


def _direct_causal_conv(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """O(L²) y[b, l, h] = Σ_{j<=l} k[h, l-j] u[b, j, h] in float64."""
    b, length, h = u.shape
    y = torch.zeros(b, length, h, dtype=torch.float64)
    u64, k64 = u.double(), k.double()
    for i in range(length):
        for j in range(i + 1):
            y[:, i] += k64[:, i - j] * u64[:, j]
    return y


@pytest.mark.parametrize("init", ["s4d_lin", "s4d_inv", "s4d_legs"])
@pytest.mark.parametrize("length", [1, 7, 33, 64])
def test_kernel_matches_complex_exponential_reference(init: str, length: int) -> None:
    layer = _layer(init=init)
    k = layer.kernel(length)
    assert k.shape == (6, length) and k.dtype == torch.float32
    ref = _reference_kernel(layer, length)
    assert torch.allclose(k.double(), ref, atol=2e-6, rtol=1e-4)


@pytest.mark.parametrize("length", [5, 31, 64])
def test_fft_convolution_equals_direct_causal_convolution(length: int) -> None:
    layer = _layer()
    u = torch.randn(3, length, 6)
    with torch.no_grad():
        y = layer(u)
        k = layer.kernel(length)
    expected = _direct_causal_conv(u, k) + layer.D.detach().double() * u.double()
    assert y.shape == u.shape
    assert torch.allclose(y.double(), expected, atol=1e-4, rtol=1e-4)


def test_causal_fft_conv_has_no_wraparound_and_is_causal() -> None:
    length = 40
    k = torch.randn(2, length)
    n_fft = fast_fft_len(2 * length)
    assert n_fft >= 2 * length
    u = torch.zeros(1, 2, length)
    u[..., -1] = 1.0  # an impulse at the last step must not leak into earlier outputs
    y = causal_fft_conv(u, torch.fft.rfft(k, n=n_fft), n_fft)
    assert torch.allclose(y[..., :-1], torch.zeros_like(y[..., :-1]), atol=1e-5)
    assert torch.allclose(y[..., -1], k[:, 0], atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rfft_last_is_rfft_and_a_well_formed_operator(dtype: torch.dtype) -> None:
    """The operator ``torch.compile`` sees in ``causal_fft_conv``: rfft along the last axis, and
    its schema, fake (shape-only) version and registration pass ``torch.library.opcheck``."""
    x = torch.randn(3, 4, 50, dtype=dtype)
    got = rfft_last(x)
    assert got.dtype == torch.fft.rfft(x).dtype
    assert torch.equal(got, torch.fft.rfft(x))
    torch.library.opcheck(rfft_last, (x,))
    torch.library.opcheck(rfft_last, (x.transpose(1, 2),))


def test_fast_fft_len_is_the_smallest_even_2_3_7_smooth_length_at_least_n() -> None:
    def smooth(m: int) -> bool:
        if m % 2:
            return False
        for p in (2, 3, 7):
            while m % p == 0:
                m //= p
        return m == 1

    for n in [*range(1, 2000), 4097, 65_537]:
        got = fast_fft_len(n)
        assert got >= n and smooth(got), n
        assert not any(smooth(m) for m in range(n, got)), n
    assert [fast_fft_len(n) for n in (1, 20, 60, 82, 332, 1000)] == [2, 24, 64, 84, 336, 1008]
    with pytest.raises(ValueError, match="positive"):
        fast_fft_len(0)


def test_forward_last_equals_last_position_of_forward() -> None:
    layer = _layer()
    u = torch.randn(2, 50, 6)
    with torch.no_grad():
        assert torch.allclose(layer.forward_last(u), layer(u)[:, -1], atol=1e-5)


def test_recurrent_step_reproduces_convolution() -> None:
    layer = _layer(h=5, n=12)
    length = 80
    u = torch.randn(2, length, 5)
    with torch.no_grad():
        y_conv = layer(u)
        state = None
        outs = []
        for i in range(length):
            y_t, state = layer.step(u[:, i], state)
            outs.append(y_t)
    y_rec = torch.stack(outs, dim=1)
    assert torch.allclose(y_rec, y_conv, atol=1e-4, rtol=1e-4)


def test_final_state_equals_stepped_state_and_streaming_continues_exactly() -> None:
    layer = _layer(h=4, n=10).eval()
    u = torch.randn(2, 60, 4)
    with torch.no_grad():
        state = None
        for i in range(45):
            _, state = layer.step(u[:, i], state)
        assert state is not None
        closed_form = layer.final_state(u[:, :45])
        assert torch.allclose(closed_form, state, atol=1e-4, rtol=1e-4)

        stream = S4DStream(layer)
        primed = stream.prime(u[:, :45])
        assert torch.allclose(primed, layer(u[:, :45]), atol=1e-6)
        streamed = torch.stack([stream.step(u[:, i]) for i in range(45, 60)], dim=1)
        full = layer(u)
    assert torch.allclose(streamed, full[:, 45:], atol=1e-4, rtol=1e-4)


def test_gradients_reach_dt_a_c_d_and_channel_kernels_differ() -> None:
    layer = _layer(h=4, n=8)
    u = torch.randn(2, 30, 4)
    layer(u).pow(2).mean().backward()
    for name in ("log_dt", "log_A_real", "A_imag", "C", "D"):
        grad = getattr(layer, name).grad
        assert grad is not None and torch.isfinite(grad).all(), name
        assert grad.abs().sum() > 0, f"no gradient for {name}"
    k = layer.kernel(30).detach()
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.allclose(k[i], k[j], atol=1e-3), f"channels {i} and {j} share a kernel"


@pytest.mark.parametrize("length", [1, 9, 40])
def test_custom_fft_conv_backward_passes_gradcheck(length: int) -> None:
    """The hand-written backward against finite differences (float64)."""
    g = torch.Generator().manual_seed(length)
    u = torch.randn(2, length, 3, dtype=torch.float64, generator=g, requires_grad=True)
    k = torch.randn(3, length, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(CausalFFTConv.apply, (u, k))
    n_fft = fast_fft_len(2 * length)
    plain = causal_fft_conv(u.transpose(1, 2), torch.fft.rfft(k, n=n_fft), n_fft)
    assert torch.allclose(CausalFFTConv.apply(u, k), plain.transpose(1, 2), atol=1e-12)


def test_training_forward_and_gradients_equal_the_autograd_convolution() -> None:
    """The layer's training path (custom backward) = autograd through ``causal_fft_conv``."""
    layer = _layer(h=5, n=8)
    u = torch.randn(3, 37, 5, requires_grad=True)
    y = layer(u)
    k = layer.skip_kernel(37)
    n_fft = fast_fft_len(74)
    ref = causal_fft_conv(u.transpose(1, 2), torch.fft.rfft(k, n=n_fft), n_fft).transpose(1, 2)
    assert torch.allclose(y, ref, atol=1e-6)
    w = torch.randn_like(y)
    params = [u, layer.log_dt, layer.log_A_real, layer.A_imag, layer.C, layer.D]
    got = torch.autograd.grad((y * w).sum(), params)
    want = torch.autograd.grad((ref * w).sum(), params)
    for name, a, b in zip(
        ["u", "log_dt", "log_A_real", "A_imag", "C", "D"], got, want, strict=True
    ):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4), name


def test_step_inference_equals_step_and_its_coefficients_are_cached() -> None:
    layer = _layer().eval()
    u = torch.randn(3, 12, 6)
    with torch.inference_mode():
        s_ref = s_fast = layer.initial_state(3)
        for i in range(12):
            y_ref, s_ref = layer.step(u[:, i], s_ref)
            y_fast, s_fast = layer.step_inference(u[:, i], s_fast)
            assert torch.allclose(y_fast, y_ref, atol=1e-5)
            assert torch.allclose(s_fast, s_ref, atol=1e-6)
    with torch.no_grad():
        first = layer.stream_coefficients() + layer.real_step_coefficients()
        again = layer.stream_coefficients() + layer.real_step_coefficients()
        assert all(a is b for a, b in zip(again, first, strict=True))  # the cached tensors
        layer.C.add_(0.1)
        changed = layer.stream_coefficients() + layer.real_step_coefficients()
        assert not any(a is b for a, b in zip(changed, first, strict=True))


def test_real_step_equals_the_complex_step() -> None:
    """``s4d_step_real`` on view_as_real states = ``step`` (state and output), step by step."""
    layer = _layer().eval()
    u = torch.randn(3, 12, 6)
    with torch.inference_mode():
        coefs = layer.real_step_coefficients()
        assert coefs[0].is_contiguous() and coefs[1].is_contiguous()
        s_ref = layer.initial_state(3)
        s_real = torch.view_as_real(s_ref)
        for i in range(12):
            y_ref, s_ref = layer.step(u[:, i], s_ref)
            y_real, s_real = s4d_step_real(u[:, i], s_real, *coefs)
            assert torch.allclose(y_real, y_ref, atol=1e-5)
            assert torch.allclose(torch.view_as_complex(s_real), s_ref, atol=1e-6)


def test_ssm_parameters_are_exactly_dt_and_a() -> None:
    layer = _layer()
    assert {id(p) for p in layer.ssm_parameters()} == {
        id(layer.log_dt),
        id(layer.log_A_real),
        id(layer.A_imag),
    }


def test_dt_is_log_uniform_within_bounds() -> None:
    torch.manual_seed(1)
    layer = S4D(2000, 4, dt_min=1e-3, dt_max=1e-1)
    dt = torch.exp(layer.log_dt.detach())
    assert dt.min() >= 1e-3 * (1 - 1e-6) and dt.max() <= 1e-1 * (1 + 1e-6)
    # log-uniform: log10(dt) roughly uniform on [-3, -1]
    hist = torch.histc(torch.log10(dt), bins=4, min=-3, max=-1)
    assert (hist > 400).all()


def test_init_a_values() -> None:
    re, im = init_a(8, "s4d_lin")
    assert torch.allclose(re, torch.full((4,), -0.5))
    assert torch.allclose(im, math.pi * torch.arange(4, dtype=torch.float32))
    _, im_inv = init_a(8, "s4d_inv")
    n = torch.arange(4, dtype=torch.float64)
    assert torch.allclose(im_inv.double(), 8 / math.pi * (8 / (2 * n + 1) - 1), atol=1e-5)
    with pytest.raises(ValueError, match="unknown S4D init"):
        init_a(8, "bogus")  # type: ignore[arg-type]


def test_legs_diagonal_matches_eigenvalues_of_normal_hippo_legs() -> None:
    n_state = 8
    n = np.arange(n_state)
    legs = -np.where(
        n[:, None] > n[None, :],
        np.sqrt(2 * n[:, None] + 1) * np.sqrt(2 * n[None, :] + 1),
        np.where(n[:, None] == n[None, :], n[:, None] + 1, 0),
    ).astype(float)
    p = np.sqrt(n + 0.5)
    normal = legs + np.outer(p, p)
    eig = np.linalg.eigvals(normal)
    assert np.allclose(eig.real, -0.5, atol=1e-8)
    expected = np.sort(eig.imag[eig.imag > 0])[::-1]
    assert np.allclose(hippo_legs_diagonal_imag(n_state), expected, atol=1e-8)


def test_kernel_cache_in_eval_is_reused_and_invalidated_on_parameter_change() -> None:
    layer = _layer().eval()
    u = torch.randn(1, 20, 6)
    with torch.inference_mode():
        k1 = layer.kernel_spectrum(20)
        k2 = layer.kernel_spectrum(20)
        assert k1 is k2  # cached
        y1 = layer(u)
    with torch.no_grad():
        layer.A_imag.add_(0.3)  # an in-place update, as an optimizer step does
    with torch.inference_mode():
        k3 = layer.kernel_spectrum(20)
        assert k3 is not k1
        y2 = layer(u)
    assert not torch.allclose(y1, y2)
    fresh = _layer()
    fresh.load_state_dict(layer.state_dict())
    fresh.eval()
    with torch.inference_mode():
        assert torch.allclose(fresh(u), y2, atol=1e-6)
    # load_state_dict into a layer with a warm cache must invalidate it
    fresh.load_state_dict(_layer(seed=5).state_dict())
    with torch.inference_mode():
        assert torch.allclose(fresh(u), _layer(seed=5).eval()(u), atol=1e-6)
        # in-place loading under inference mode also invalidates
        fresh.load_state_dict(_layer(seed=6).state_dict())
        assert torch.allclose(fresh(u), _layer(seed=6).eval()(u), atol=1e-6)
        # a layer created under inference mode has inference-tensor parameters: never cached
        assert _layer(seed=6).eval()._cache_key() is None


def test_cached_eval_forward_equals_uncached_and_follows_an_optimizer_step() -> None:
    """In eval mode without autograd the kernel spectrum, the reversed kernel and the stream
    coefficients come from the cache; each equals the fresh computation (autograd on, no cache),
    also after an optimizer step updated the parameters in place while the layer stayed in
    eval mode (a stale cache would still give the old outputs)."""
    layer = _layer().eval()
    u = torch.randn(3, 40, 6)
    u_t = torch.randn(3, 6)
    state = torch.randn(3, 6, 8, dtype=torch.complex64)
    opt = torch.optim.SGD(layer.parameters(), lr=0.2)
    previous = None
    for _ in range(2):
        with torch.inference_mode():
            cached = [
                layer(u),
                layer(u),
                layer.forward_last(u),
                layer.step_inference(u_t, state)[0],
            ]
            assert layer._kernel_cache and layer._stream_cache
        uncached = [layer(u), layer(u)[:, -1], layer.step(u_t, state)[0]]  # autograd on
        assert uncached[0].requires_grad
        assert torch.equal(cached[0], cached[1])
        assert torch.allclose(cached[0], uncached[0], atol=1e-5)
        assert torch.allclose(cached[2], uncached[1], atol=1e-5)
        assert torch.allclose(cached[3], uncached[2], atol=1e-5)
        if previous is not None:
            assert not torch.allclose(cached[0], previous, atol=1e-3)
        previous = cached[0]
        opt.zero_grad()
        (layer(u) ** 2).mean().backward()
        opt.step()  # in place, in eval mode: only the version counters change


def test_no_cache_with_autograd_or_in_training() -> None:
    layer = _layer()
    u = torch.randn(1, 20, 6)
    layer(u)
    assert not layer._kernel_cache
    layer.eval()
    layer(u)  # grad enabled: no cache (a cached kernel would not carry gradients)
    assert not layer._kernel_cache
    with torch.no_grad():
        layer(u)
    assert layer._kernel_cache
    layer.train()
    assert not layer._kernel_cache


def test_kernel_and_fft_stay_float32_under_bf16_autocast() -> None:
    layer = _layer()
    u = torch.randn(2, 40, 6)
    with torch.no_grad():
        ref = layer(u)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = layer(u.bfloat16())
            k = layer.kernel(40)
    assert y.dtype == torch.float32 and k.dtype == torch.float32
    # only the bf16 rounding of the input differs
    assert torch.allclose(y, ref, atol=0.05, rtol=0.02)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="state_dim"):
        S4D(4, 7)
    with pytest.raises(ValueError, match="dt_min"):
        S4D(4, 8, dt_min=0.1, dt_max=0.01)
    with pytest.raises(ValueError, match="expects"):
        _layer()(torch.randn(2, 5, 3))
