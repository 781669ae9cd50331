"""S4D: a diagonal state-space layer with a causal FFT convolution and an exact recurrent mode.

For every channel h the layer is the continuous system x' = A x + B u, y = 2 Re(C x) + D u with a
diagonal complex A of N/2 modes (the conjugate halves are implicit, hence the factor 2 and the real
output). Discretised by zero-order hold with a per-channel step dt:

    Ā = exp(dt A),    B̄ = (Ā - 1) / A · B     (B = 1: with C trainable, B is redundant)
    K[l] = 2 Re( Σ_n C_n B̄_n Ā_n^l ),          y = K * u (causal) + D u

All parameters are real (complex ones as real/imaginary pairs) and the kernel is computed with real
arithmetic only; the skip D is folded into lag 0 of the kernel. The kernel uses a two-level power
table: with l = q·P + r, Ā^l = Ā^{qP} · Ā^r, so the kernel of every
channel is one small real matrix product (Q × N) @ (N × P) instead of N·L complex exponentials.

Parameters ``log_dt`` (dt) and ``log_A_real`` / ``A_imag`` (A) are the SSM parameters returned by
``ssm_parameters()`` (own optimizer group: lower learning rate, no weight decay). ``C`` and ``D``
are ordinary parameters. The kernel and the FFT always run in float32, also under autocast. In eval
mode without autograd the kernel spectrum is cached and invalidated when a parameter changes
(tracked by tensor version counters and storage pointers).

Shapes: sequences are (B, L, H) (batch, length, channels); the recurrent state is complex
(B, H, N/2).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

S4DInit = Literal["s4d_lin", "s4d_inv", "s4d_legs"]


def fast_fft_len(n: int) -> int:
    """The smallest even 2^a·3^b·7^c (a >= 1) that is >= n: the real-FFT lengths that measured
    fastest with the MKL transforms torch runs on the CPU, where lengths with factors of 5
    (1000 for a window of 500 bars) were slower than the next 2·3·7 one (1008) and powers of two
    were not reliably faster (``benchmarks/bench_fft_sizes.py`` prints the comparison).

    Raises:
        ValueError: n < 1.
    """
    if n < 1:
        raise ValueError(f"an FFT length must be positive, got {n}")
    best = 1 << max(1, (n - 1).bit_length())  # the power of two (at least 2)
    p7 = 1
    while p7 < best:
        p37 = p7
        while p37 < best:
            # the least power of two (at least 2) that takes p37 to n or above
            best = min(best, p37 << max(1, (-(-n // p37) - 1).bit_length()))
            p37 *= 3
        p7 *= 7
    return best


def hippo_legs_diagonal_imag(state_dim: int) -> np.ndarray:
    """Imaginary parts of the eigenvalues of the normal part of HiPPO-LegS (size ``state_dim``).

    The normal part of LegS is -1/2·I + S with S skew-symmetric, so the eigenvalues are
    -1/2 ± iω; the ``state_dim // 2`` largest ω ≥ 0 are returned in decreasing order.
    """
    n = np.arange(state_dim, dtype=np.float64)
    q = np.sqrt(2 * n + 1)
    skew = 0.5 * np.outer(q, q) * np.sign(n[None, :] - n[:, None])  # S_nk = -1/2 q_n q_k sign(n-k)
    omega = np.linalg.eigvalsh(1j * skew)  # i·S is Hermitian; its real eigenvalues are ∓ω
    omega = np.sort(np.abs(omega))[::-1]
    return np.ascontiguousarray(omega[0::2][: state_dim // 2])


def init_a(state_dim: int, init: S4DInit) -> tuple[Tensor, Tensor]:
    """Real and imaginary parts of the initial diagonal A, each (N/2,), float32."""
    half = state_dim // 2
    n = torch.arange(half, dtype=torch.float64)
    real = torch.full((half,), -0.5, dtype=torch.float64)
    if init == "s4d_lin":
        imag = math.pi * n
    elif init == "s4d_inv":
        imag = state_dim / math.pi * (state_dim / (2 * n + 1) - 1)
    elif init == "s4d_legs":
        imag = torch.from_numpy(hippo_legs_diagonal_imag(state_dim))
    else:
        raise ValueError(f"unknown S4D init {init!r}: use s4d_lin, s4d_inv or s4d_legs")
    return real.float(), imag.float()


@torch.library.custom_op("forex_diffusion::rfft_last", mutates_args=())
def rfft_last(x: Tensor) -> Tensor:
    """``torch.fft.rfft`` along the last axis, as an operator of its own for ``torch.compile``.

    Inductor fuses the zero padding before an FFT into the kernel that produces the input and
    lays the padded buffer out as that kernel iterates (time-major after the S4D's input
    norm); the FFT then copies it to channel-major first. An operator of its own gets its
    input in the layout eager code gives it (contiguous), so the fused kernel writes that.
    """
    return torch.fft.rfft(x)


@rfft_last.register_fake
def _rfft_last_fake(x: Tensor) -> Tensor:
    dtype = torch.promote_types(x.dtype, torch.complex64)
    return x.new_empty((*x.shape[:-1], x.shape[-1] // 2 + 1), dtype=dtype)


def causal_fft_conv(u: Tensor, kernel_f: Tensor, n_fft: int) -> Tensor:
    """Causal convolution y[l] = Σ_{j<=l} k[j] u[l-j] along the last axis.

    Args:
        u: (..., H, L) float32.
        kernel_f: rfft of the kernel with length ``n_fft``, (H, n_fft // 2 + 1) complex.
        n_fft: FFT length, >= 2L (no circular wrap-around).

    Returns:
        (..., H, L) float32.
    """
    length = u.shape[-1]
    if torch.compiler.is_compiling():  # the same transform; see rfft_last
        u_f = rfft_last(F.pad(u, (0, n_fft - length)))
    else:
        u_f = torch.fft.rfft(u, n=n_fft)
    return torch.fft.irfft(u_f.mul_(kernel_f), n=n_fft)[..., :length]


class CausalFFTConv(torch.autograd.Function):
    """``causal_fft_conv`` of u with a time-domain kernel, with a hand-written backward.

    Forward: y = irfft(U·K)[:L] with U = rfft(u), K = rfft(k) at n_fft = fast_fft_len(2L). Both
    gradients are correlations computed from the saved spectra with one real FFT of the output
    gradient G = rfft(∂y) and one inverse real FFT each (autograd's generic backward of rfft goes
    through full complex transforms):

        ∂u = irfft(G·conj(K))[:L],        ∂k = irfft(Σ_b G·conj(U))[:L].

    Shapes: u (B, L, H) float32, k (H, L) float32 → (B, L, H), a view of channel-major memory.
    """

    @staticmethod
    def forward(ctx, u: Tensor, k: Tensor) -> Tensor:  # type: ignore[override]
        length = u.shape[1]
        n_fft = fast_fft_len(2 * length)
        u_f = torch.fft.rfft(u.transpose(1, 2), n=n_fft)
        k_f = torch.fft.rfft(k, n=n_fft)
        ctx.save_for_backward(u_f, k_f)
        ctx.n_fft, ctx.length = n_fft, length
        return torch.fft.irfft(u_f * k_f, n=n_fft)[..., :length].transpose(1, 2)

    @staticmethod
    def backward(ctx, grad_y: Tensor) -> tuple[Tensor | None, Tensor | None]:  # type: ignore[override]
        u_f, k_f = ctx.saved_tensors
        n_fft, length = ctx.n_fft, ctx.length
        g_f = torch.fft.rfft(grad_y.transpose(1, 2), n=n_fft)
        grad_u = grad_k = None
        if ctx.needs_input_grad[1]:
            cross = torch.einsum("bhf,bhf->hf", g_f, u_f.conj())
            grad_k = torch.fft.irfft(cross, n=n_fft)[..., :length]
        if ctx.needs_input_grad[0]:
            grad_u = torch.fft.irfft(g_f.mul_(k_f.conj()), n=n_fft)[..., :length].transpose(1, 2)
        return grad_u, grad_k


class S4D(nn.Module):
    """Diagonal state-space layer (S4D) over (B, L, H) sequences.

    Args:
        d_model: channels H (each channel has its own dt, A, C, D).
        state_dim: N, the size of the complex state counted with conjugates (N/2 modes kept).
        init: ``s4d_lin`` (Im A = πn), ``s4d_inv`` (Im A = N/π·(N/(2n+1) - 1)) or ``s4d_legs``
            (diagonal of the normal HiPPO-LegS matrix); Re A = -1/2 for all.
        dt_min, dt_max: dt is drawn log-uniformly in [dt_min, dt_max] per channel.
    """

    def __init__(
        self,
        d_model: int,
        state_dim: int = 64,
        init: S4DInit = "s4d_lin",
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
    ) -> None:
        super().__init__()
        if state_dim < 2 or state_dim % 2:
            raise ValueError(f"state_dim must be an even number >= 2, got {state_dim}")
        if not 0 < dt_min < dt_max:
            raise ValueError(f"need 0 < dt_min < dt_max, got dt_min={dt_min}, dt_max={dt_max}")
        self.d_model = d_model
        self.state_dim = state_dim
        half = state_dim // 2
        a_real, a_imag = init_a(state_dim, init)
        log_dt = torch.rand(d_model) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        self.log_dt = nn.Parameter(log_dt)  # (H,)
        self.log_A_real = nn.Parameter(torch.log(-a_real).repeat(d_model, 1))  # (H, N/2)
        self.A_imag = nn.Parameter(a_imag.repeat(d_model, 1))  # (H, N/2)
        # C ~ complex standard normal (variance 1), stored as (H, N/2, 2) = (real, imag)
        self.C = nn.Parameter(torch.randn(d_model, half, 2) * math.sqrt(0.5))
        self.D = nn.Parameter(torch.randn(d_model))  # (H,)
        self._kernel_cache: dict[tuple[object, ...], dict[str, Tensor]] = {}
        self._step_cache: dict[tuple[object, ...], tuple[Tensor, Tensor]] = {}
        self._stream_cache: dict[
            tuple[object, ...], tuple[Tensor, Tensor, Tensor, Tensor, Tensor]
        ] = {}

    # ------------------------------------------------------------------ parameters

    def ssm_parameters(self) -> list[nn.Parameter]:
        """dt and A: the parameters that belong in the SSM optimizer group."""
        return [self.log_dt, self.log_A_real, self.A_imag]

    def train(self, mode: bool = True) -> S4D:
        self._kernel_cache.clear()
        self._step_cache.clear()
        self._stream_cache.clear()
        return super().train(mode)

    def _cache_key(self, *extra: object) -> tuple[object, ...] | None:
        """A key that changes with any parameter change, or None when caching is not allowed."""
        if self.training or torch.is_grad_enabled():
            return None
        params = (self.log_dt, self.log_A_real, self.A_imag, self.C, self.D)
        if any(p.is_inference() for p in params):
            return None  # inference tensors have no version counter: never cache them
        stamp = tuple((p.data_ptr(), p._version) for p in params)
        return (*extra, stamp, torch.is_inference_mode_enabled())

    # ------------------------------------------------------------------ discretisation

    def _discretize(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """dt·A and C·B̄ in real arithmetic (float32).

        Returns:
            dta_re, dta_im: real and imaginary part of dt·A, (H, N/2).
            ct_re, ct_im: real and imaginary part of C̃ = C·B̄, (H, N/2).
        """
        dt = torch.exp(self.log_dt.float())[:, None]  # (H, 1)
        a_re = -torch.exp(self.log_A_real.float())  # (H, N/2), strictly negative
        a_im = self.A_imag.float()
        dta_re, dta_im = dt * a_re, dt * a_im
        # Ā - 1 = e^{x}(cos y + i sin y) - 1 with x = dt·Re A, y = dt·Im A (expm1 form: no cancellation)
        num_re = torch.expm1(dta_re) * torch.cos(dta_im) - 2 * torch.sin(dta_im / 2) ** 2
        num_im = torch.exp(dta_re) * torch.sin(dta_im)
        # B̄ = (Ā - 1) / A
        denom = a_re**2 + a_im**2
        b_re = (num_re * a_re + num_im * a_im) / denom
        b_im = (num_im * a_re - num_re * a_im) / denom
        c = self.C.float()
        c_re, c_im = c[..., 0], c[..., 1]
        ct_re = c_re * b_re - c_im * b_im
        ct_im = c_re * b_im + c_im * b_re
        return dta_re, dta_im, ct_re, ct_im

    def kernel(self, length: int) -> Tensor:
        """The convolution kernel K[h, l] for l = 0 .. length-1, (H, length) float32."""
        with torch.autocast(device_type=self.log_dt.device.type, enabled=False):
            dta_re, dta_im, ct_re, ct_im = self._discretize()
            p = max(1, math.isqrt(length - 1) + 1) if length > 1 else 1
            q = -(-length // p)
            device = dta_re.device
            r_idx = torch.arange(p, device=device, dtype=torch.float32)  # (P,)
            q_idx = torch.arange(q, device=device, dtype=torch.float32) * p  # (Q,)
            # Y[h, n, r] = C̃ Ā^r,  X[h, q, n] = Ā^{qP}
            mag_r = torch.exp(dta_re[..., None] * r_idx)
            ang_r = dta_im[..., None] * r_idx
            pow_r_re, pow_r_im = mag_r * torch.cos(ang_r), mag_r * torch.sin(ang_r)
            y_re = ct_re[..., None] * pow_r_re - ct_im[..., None] * pow_r_im
            y_im = ct_re[..., None] * pow_r_im + ct_im[..., None] * pow_r_re
            mag_q = torch.exp(dta_re[:, None, :] * q_idx[:, None])  # (H, Q, N/2)
            ang_q = dta_im[:, None, :] * q_idx[:, None]
            x_re, x_im = mag_q * torch.cos(ang_q), mag_q * torch.sin(ang_q)
            # 2 Re(X Y) = 2 [X_re, -X_im] @ [Y_re; Y_im]
            lhs = torch.cat([x_re, -x_im], dim=-1)  # (H, Q, N)
            rhs = torch.cat([y_re, y_im], dim=-2)  # (H, N, P)
            k = 2 * torch.bmm(lhs, rhs)  # (H, Q, P)
            return k.reshape(k.shape[0], q * p)[:, :length]

    def skip_kernel(self, length: int) -> Tensor:
        """The kernel with the skip D folded into lag 0: y = (K + D·δ) * u, (H, length) float32."""
        with torch.autocast(device_type=self.log_dt.device.type, enabled=False):
            k = self.kernel(length)
            return torch.cat([k[:, :1] + self.D.float()[:, None], k[:, 1:]], dim=1)

    def _cached(self, length: int, kind: str) -> Tensor:
        """Derived kernels, cached in eval mode without autograd (else computed fresh).

        kind ``spectrum``: rfft of the skip kernel with n_fft = fast_fft_len(2L), (H, n_fft//2+1);
        kind ``reversed``: the skip kernel reversed in time and transposed, (L, H).
        """
        key = self._cache_key(length)
        entry: dict[str, Tensor] | None = None
        if key is not None:
            if key not in self._kernel_cache:
                self._kernel_cache.clear()
                self._kernel_cache[key] = {}
            entry = self._kernel_cache[key]
            if kind in entry:
                return entry[kind]
        with torch.autocast(device_type=self.log_dt.device.type, enabled=False):
            k = self.skip_kernel(length)
            if kind == "spectrum":
                value = torch.fft.rfft(k, n=fast_fft_len(2 * length))
            else:
                value = k.flip(-1).t().contiguous()
        if entry is not None:
            entry[kind] = value
        return value

    def kernel_spectrum(self, length: int) -> Tensor:
        """rfft of the skip kernel for sequences of ``length`` at n_fft = fast_fft_len(2L),
        (H, n_fft // 2 + 1) (cached in eval mode)."""
        return self._cached(length, "spectrum")

    # ------------------------------------------------------------------ convolution mode

    def forward(self, u: Tensor, spectrum: Tensor | None = None) -> Tensor:
        """Causal S4D over a sequence.

        Args:
            u: (B, L, H).
            spectrum: ``kernel_spectrum(L)`` computed beforehand (inference without
                autograd only; what a compiled encoder is handed, as it cannot read the cache).

        Returns:
            (B, L, H) in float32 (the kernel and FFT always run in float32).
        """
        if u.dim() != 3 or u.shape[-1] != self.d_model:
            raise ValueError(f"S4D expects (B, L, {self.d_model}), got {tuple(u.shape)}")
        with torch.autocast(device_type=u.device.type, enabled=False):
            x = u.float()
            length = x.shape[1]
            if self.training or torch.is_grad_enabled():  # the kernel is recomputed
                return CausalFFTConv.apply(x, self.skip_kernel(length))
            if spectrum is None:
                spectrum = self.kernel_spectrum(length)
            y = causal_fft_conv(x.transpose(1, 2), spectrum, fast_fft_len(2 * length))
            return y.transpose(1, 2)

    def forward_last(self, u: Tensor, reversed_kernel: Tensor | None = None) -> Tensor:
        """The last position of ``forward`` only, by a direct dot product: (B, L, H) → (B, H).

        ``reversed_kernel``: ``reversed_kernel(L)`` computed beforehand (as ``spectrum`` of
        ``forward``)."""
        if u.dim() != 3 or u.shape[-1] != self.d_model:
            raise ValueError(f"S4D expects (B, L, {self.d_model}), got {tuple(u.shape)}")
        if reversed_kernel is None:
            reversed_kernel = self.reversed_kernel(u.shape[1])
        with torch.autocast(device_type=u.device.type, enabled=False):
            # y[L-1] = Σ_j (K + Dδ)[L-1-j] u[j]
            return (u.float() * reversed_kernel).sum(dim=1)

    def reversed_kernel(self, length: int) -> Tensor:
        """The skip kernel reversed in time and transposed, (L, H) (cached in eval mode)."""
        return self._cached(length, "reversed")

    # ------------------------------------------------------------------ recurrent mode

    def step_parameters(self) -> tuple[Tensor, Tensor]:
        """Complex Ā and C̃ = C·B̄, each (H, N/2); cached in eval mode without autograd."""
        key = self._cache_key("step")
        if key is not None and key in self._step_cache:
            return self._step_cache[key]
        with torch.autocast(device_type=self.log_dt.device.type, enabled=False):
            dta_re, dta_im, ct_re, ct_im = self._discretize()
            a_bar = torch.exp(torch.complex(dta_re, dta_im))
            c_tilde = torch.complex(ct_re, ct_im)
        if key is not None:
            self._step_cache.clear()
            self._step_cache[key] = (a_bar, c_tilde)
        return a_bar, c_tilde

    def stream_coefficients(self) -> tuple[Tensor, Tensor, Tensor]:
        """Ā (H, N/2) complex, the output weights W (H, N) with 2 Re(Σ C̃ s) = Σ view_as_real(s)·W
        (W interleaves 2 Re C̃ and -2 Im C̃), and D (H,), float32, without autograd. Cached in
        eval mode like ``step_parameters``."""
        a_bar, w, d, _, _ = self._stream_entry()
        return a_bar, w, d

    def real_step_coefficients(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The coefficients of ``s4d_step_real``: Re Ā and Im Ā (H, N/2), W (H, N) and D (H,),
        float32 and contiguous; cached like ``stream_coefficients``."""
        _, w, d, a_re, a_im = self._stream_entry()
        return a_re, a_im, w, d

    def _stream_entry(self) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(Ā, W, D, Re Ā, Im Ā) for the two streaming steps, cached in eval mode."""
        key = self._cache_key("stream")
        if key is not None and key in self._stream_cache:
            return self._stream_cache[key]
        with torch.no_grad():
            a_bar, c_tilde = self.step_parameters()
            w = torch.stack([2 * c_tilde.real, -2 * c_tilde.imag], dim=-1).flatten(-2)
            entry = (
                a_bar,
                w.contiguous(),
                self.D.detach().float(),
                a_bar.real.contiguous(),
                a_bar.imag.contiguous(),
            )
        if key is not None:
            self._stream_cache.clear()
            self._stream_cache[key] = entry
        return entry

    def step_inference(self, u_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """``step`` for streaming without autograd: the same update with the coefficients of
        ``stream_coefficients`` and fewer tensor operations.

        Args:
            u_t: (B, H) float32.
            state: (B, H, N/2) complex64.

        Returns:
            y_t (B, H) float32 and the new state.
        """
        a_bar, w, d = self.stream_coefficients()
        state = a_bar * state + u_t[..., None]
        y = torch.addcmul((torch.view_as_real(state).flatten(-2) * w).sum(-1), d, u_t)
        return y, state

    def initial_state(self, batch_size: int, device: torch.device | None = None) -> Tensor:
        """A zero state, (B, H, N/2) complex64."""
        return torch.zeros(
            batch_size,
            self.d_model,
            self.state_dim // 2,
            dtype=torch.complex64,
            device=device if device is not None else self.log_dt.device,
        )

    def step(self, u_t: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One recurrent step: s ← Ā s + u_t,  y_t = 2 Re(Σ_n C̃_n s_n) + D u_t.

        Feeding u_0 .. u_{L-1} from a zero state reproduces ``forward`` position by position.

        Args:
            u_t: (B, H).
            state: (B, H, N/2) complex64, or None for a zero state.

        Returns:
            y_t (B, H) float32 and the new state.
        """
        with torch.autocast(device_type=u_t.device.type, enabled=False):
            u = u_t.float()
            if state is None:
                state = self.initial_state(u.shape[0], u.device)
            a_bar, c_tilde = self.step_parameters()
            state = a_bar * state + u[..., None]
            y = 2 * (c_tilde * state).real.sum(-1) + self.D.float() * u
            return y, state

    def final_state(self, u: Tensor) -> Tensor:
        """The recurrent state after consuming a whole sequence from a zero state.

        s_{L-1} = Σ_k Ā^{L-1-k} u_k, computed in closed form (no loop).

        Args:
            u: (B, L, H).

        Returns:
            (B, H, N/2) complex64.
        """
        with torch.autocast(device_type=u.device.type, enabled=False):
            x = u.float()
            length = x.shape[1]
            dta_re, dta_im, _, _ = self._discretize()
            lags = torch.arange(length - 1, -1, -1, device=x.device, dtype=torch.float32)  # (L,)
            mag = torch.exp(dta_re[..., None] * lags)  # (H, N/2, L)
            ang = dta_im[..., None] * lags
            s_re = torch.einsum("blh,hnl->bhn", x, mag * torch.cos(ang))
            s_im = torch.einsum("blh,hnl->bhn", x, mag * torch.sin(ang))
            return torch.complex(s_re, s_im)


def s4d_step_real(
    u_t: Tensor, state: Tensor, a_re: Tensor, a_im: Tensor, w: Tensor, d: Tensor
) -> tuple[Tensor, Tensor]:
    """``S4D.step`` in real arithmetic only, for ``torch.compile`` (whose code generation has no
    complex operators): with s = s_re + i·s_im and Ā = a_re + i·a_im,

        s_re ← a_re·s_re − a_im·s_im + u_t,    s_im ← a_re·s_im + a_im·s_re,
        y_t = Σ view_as_real(s)·W + D·u_t        (W interleaves 2 Re C̃ and −2 Im C̃).

    Args:
        u_t: (B, H) float32.
        state: (B, H, N/2, 2) float32, ``torch.view_as_real`` of the complex state.
        a_re, a_im, w, d: ``S4D.real_step_coefficients()``.

    Returns:
        y_t (B, H) and the new state (B, H, N/2, 2).
    """
    s_re, s_im = state[..., 0], state[..., 1]
    new_state = torch.stack(
        [a_re * s_re - a_im * s_im + u_t[..., None], a_re * s_im + a_im * s_re], dim=-1
    )
    y = (new_state.flatten(-2) * w).sum(-1) + d * u_t
    return y, new_state


class S4DStream:
    """Streaming wrapper: consumes a sequence one position at a time.

    ``prime(u)`` runs the convolution over an initial window and sets the state as if the window
    had been fed step by step; each ``step(u_t)`` then returns the output the convolution over the
    grown sequence would give at its last position.
    """

    def __init__(self, layer: S4D) -> None:
        self.layer = layer
        self.state: Tensor | None = None

    def reset(self) -> None:
        self.state = None

    def prime(self, u: Tensor) -> Tensor:
        """Process a window (B, L, H); returns its outputs (B, L, H) and keeps the final state."""
        y = self.layer(u)
        self.state = self.layer.final_state(u)
        return y

    def step(self, u_t: Tensor) -> Tensor:
        """Process one position (B, H); returns y_t (B, H)."""
        y, self.state = self.layer.step(u_t, self.state)
        return y
