"""Multi-timeframe S4D encoder: one causal S4D stack per timeframe, fused into one context vector.

Per timeframe: linear stem → n blocks (pre-norm, S4D, GELU, dropout, GLU, dropout, residual) →
LayerNorm; the timeframe summary is the last position (the latest closed bar). The summaries of
all timeframes (plus a learned timeframe embedding) go through one pre-norm multi-head
self-attention layer with a residual (switched off by ``cross_attention=False`` for ablation), are
flattened and projected to the context (B, context_dim).

Streaming (SPEC §8): ``start_stream`` runs the stacks once over the windows and keeps every
block's recurrent S4D state; ``EncoderStream.update(timeframe, bar)`` then consumes one newly
closed bar of that timeframe in O(layers · H · N) and ``context()`` re-fuses the summaries. The
result equals the encoder run over the window grown by the new bars (the windows are not
recomputed, so bars older than the original window start keep contributing through the kernel
tail; re-prime periodically to return to exact fixed-length-window semantics).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from forex_diffusion.models.s4_layer import S4D, S4DInit, s4d_step_real
from forex_diffusion.models.stream_compile import CompiledStreamSteps, StepOutput

#: one block's ``S4D.real_step_coefficients()``: Re Ā, Im Ā, W, D
StepCoefficients = tuple[Tensor, Tensor, Tensor, Tensor]


def channel_major_dropout(z: Tensor, p: float, training: bool) -> Tensor:
    """``F.dropout`` of a (B, L, H) tensor with its mask drawn in (B, H, L) order; other shapes
    (the last position, (B, H)) get plain ``F.dropout``.

    The S4D convolution runs channel-major, and the mask of the dropout after it has always
    been drawn in that order; drawing it so whatever the memory layout of ``z`` keeps training
    at a fixed seed independent of the layout the convolution hands back. Same mask values
    and scaling as ``F.dropout``: Bernoulli(1 - p) / (1 - p).
    """
    if not training or p == 0 or z.dim() != 3:
        return F.dropout(z, p, training)
    batch, length, channels = z.shape
    mask = torch.empty(batch, channels, length, dtype=z.dtype, device=z.device)
    mask = mask.bernoulli_(1 - p).div_(1 - p) if p < 1 else mask.zero_()
    return z * mask.transpose(1, 2).contiguous()


class S4DBlock(nn.Module):
    """x + Dropout(GLU(Linear(Dropout(GELU(S4D(LayerNorm(x))))))) on (B, L, H)."""

    def __init__(
        self,
        d_model: int,
        state_dim: int,
        init: S4DInit,
        dt_min: float,
        dt_max: float,
        dropout: float,
    ) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.s4 = S4D(d_model, state_dim, init, dt_min, dt_max)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(d_model, 2 * d_model)

    def _post(self, z: Tensor) -> Tensor:
        # the S4D output is a view of channel-major memory: one copy to time-major first, or
        # every elementwise op (and its backward) after it runs on mixed layouts
        z = channel_major_dropout(F.gelu(z.contiguous()), self.dropout.p, self.training)
        if torch.compiler.is_compiling():
            # Inductor on a CPU keeps a linear layer's bias in addmm, which first copies it into
            # the whole output; as a product and an addition the bias joins the fused GLU kernel
            out = torch.matmul(z, self.out.weight.t()) + self.out.bias
        else:
            out = self.out(z)
        return self.dropout(F.glu(out, dim=-1))

    def forward(self, x: Tensor, spectrum: Tensor | None = None) -> Tensor:
        """(B, L, H) → (B, L, H); ``spectrum``: see ``S4D.forward``."""
        return x + self._post(self.s4(self.norm(x), spectrum))

    def forward_last(self, x: Tensor, reversed_kernel: Tensor | None = None) -> Tensor:
        """Only the last position of ``forward``: (B, L, H) → (B, H); ``reversed_kernel``: see
        ``S4D.forward_last``."""
        z = self.s4.forward_last(self.norm(x), reversed_kernel)
        return x[:, -1] + self._post(z)

    def prime(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``forward`` plus the S4D state after the sequence: ((B, L, H), (B, H, N/2) complex)."""
        z = self.norm(x)
        return x + self._post(self.s4(z)), self.s4.final_state(z)

    def step(self, x_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """One position (B, H) given the S4D state → (output (B, H), new state)."""
        z, state = self.s4.step(self.norm(x_t), state)
        return x_t + self._post(z), state

    def step_inference(self, x_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """``step`` in eval mode without autograd (dropout is the identity), by functional calls
        and ``S4D.step_inference``."""
        norm = self.norm
        z = F.layer_norm(x_t, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
        z, state = self.s4.step_inference(z, state)
        z = F.glu(F.linear(F.gelu(z), self.out.weight, self.out.bias), dim=-1)
        return x_t + z, state

    def step_real(
        self, x_t: Tensor, state: Tensor, coefficients: StepCoefficients
    ) -> tuple[Tensor, Tensor]:
        """``step`` with the S4D state in real form (B, H, N/2, 2) (see ``s4d_step_real``)."""
        z, state = s4d_step_real(self.norm(x_t), state, *coefficients)
        return x_t + self._post(z), state


class TimeframeEncoder(nn.Module):
    """Stem + S4D stack for one timeframe; summary = normalised last position."""

    def __init__(
        self,
        in_dim: int,
        d_model: int,
        n_layers: int,
        state_dim: int,
        init: S4DInit,
        dt_min: float,
        dt_max: float,
        dropout: float,
    ) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.stem = nn.Linear(in_dim, d_model)
        self.blocks = nn.ModuleList(
            S4DBlock(d_model, state_dim, init, dt_min, dt_max, dropout) for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(d_model)

    def block_list(self) -> list[S4DBlock]:
        return [cast(S4DBlock, b) for b in self.blocks]

    def forward(self, x: Tensor, kernels: Sequence[Tensor] | None = None) -> Tensor:
        """Summary of a window: (B, L, F) → (B, d_model).

        ``kernels``: ``inference_kernels(L)``, computed beforehand (inference only)."""
        blocks = self.block_list()
        given = list(kernels) if kernels is not None else [None] * len(blocks)
        h = self.stem(x)
        for block, spectrum in zip(blocks[:-1], given[:-1], strict=True):
            h = block(h, spectrum)
        return self.norm(blocks[-1].forward_last(h, given[-1]))

    def inference_kernels(self, length: int) -> list[Tensor]:
        """What ``forward`` reads from the S4D caches for windows of ``length`` bars: the kernel
        spectrum of every block but the last, and the last block's reversed kernel (eval mode
        without autograd: cached)."""
        blocks = self.block_list()
        return [b.s4.kernel_spectrum(length) for b in blocks[:-1]] + [
            blocks[-1].s4.reversed_kernel(length)
        ]

    def sequence(self, x: Tensor) -> Tensor:
        """Outputs at every position: (B, L, F) → (B, L, d_model) (for tests and analysis)."""
        h = self.stem(x)
        for block in self.blocks:
            h = block(h)
        return self.norm(h)

    def prime(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Summary of a window and the per-block S4D states after it."""
        h = self.stem(x)
        states = []
        for block in self.block_list():
            h, state = block.prime(h)
            states.append(state)
        return self.norm(h[:, -1]), states

    def step(self, bar: Tensor, states: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """Consume one new bar (B, F); returns the new summary (B, d_model) and states."""
        fast = not self.training and not torch.is_grad_enabled()
        h = self.stem(bar)
        new_states = []
        for block, state in zip(self.block_list(), states, strict=True):
            h, state = block.step_inference(h, state) if fast else block.step(h, state)
            new_states.append(state)
        return self.norm(h), new_states

    def step_real(
        self, bar: Tensor, states: Sequence[Tensor], coefficients: Sequence[StepCoefficients]
    ) -> tuple[Tensor, list[Tensor]]:
        """``step`` in real arithmetic only, what ``MultiTimeframeEncoder.compile_stream``
        compiles: ``states`` are the blocks' S4D states as ``torch.view_as_real`` views
        (B, H, N/2, 2) and ``coefficients`` their ``S4D.real_step_coefficients()``."""
        h = self.stem(bar)
        new_states = []
        for block, state, coefs in zip(self.block_list(), states, coefficients, strict=True):
            h, state = block.step_real(h, state, coefs)
            new_states.append(state)
        return self.norm(h), new_states

    def step_coefficients(self) -> list[StepCoefficients]:
        """Every block's ``S4D.real_step_coefficients()`` (cached in eval mode)."""
        return [block.s4.real_step_coefficients() for block in self.block_list()]


class MultiTimeframeEncoder(nn.Module):
    """Encodes {timeframe: (B, L_tf, F_tf)} windows into a context (B, context_dim).

    Args:
        timeframes: ordered timeframe names (e.g. 5m, 15m, 1h, 4h).
        feature_dims: features per timeframe.
        d_model, n_layers, state_dim, init, dt_min, dt_max, dropout: per-timeframe S4D stacks.
        cross_attention: fuse the summaries with multi-head self-attention (False: ablation).
        attention_heads: heads of that attention.
        context_dim: size of the context vector.
    """

    def __init__(
        self,
        timeframes: Sequence[str],
        feature_dims: Mapping[str, int],
        d_model: int,
        n_layers: int,
        state_dim: int,
        init: S4DInit,
        dt_min: float,
        dt_max: float,
        dropout: float,
        cross_attention: bool,
        attention_heads: int,
        context_dim: int,
    ) -> None:
        super().__init__()
        missing = [tf for tf in timeframes if tf not in feature_dims]
        if missing or set(feature_dims) != set(timeframes):
            raise ValueError(
                f"feature_dims must have one entry per timeframe {list(timeframes)}, "
                f"got {sorted(feature_dims)}"
            )
        self.timeframes = tuple(timeframes)
        self.feature_dims = {tf: int(feature_dims[tf]) for tf in timeframes}
        self.encoders = nn.ModuleDict(
            {
                tf: TimeframeEncoder(
                    self.feature_dims[tf],
                    d_model,
                    n_layers,
                    state_dim,
                    init,
                    dt_min,
                    dt_max,
                    dropout,
                )
                for tf in timeframes
            }
        )
        n_tf = len(timeframes)
        self.timeframe_embedding = nn.Parameter(torch.randn(n_tf, d_model) * 0.02)
        self.cross_attention = cross_attention
        self.attn_norm: nn.LayerNorm | None = None
        self.attn: nn.MultiheadAttention | None = None
        if cross_attention:
            self.attn_norm = nn.LayerNorm(d_model)
            self.attn = nn.MultiheadAttention(
                d_model, attention_heads, dropout=dropout, batch_first=True
            )
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(n_tf * d_model, context_dim)
        self.out_norm = nn.LayerNorm(context_dim)
        # see compile_stream
        self.compiled_step_and_fuse: CompiledStreamSteps | None = None

    def compile_stream(self) -> None:
        """Run ``EncoderStream.advance`` in eval mode without autograd through ``step_and_fuse``
        compiled ahead of time by AOTInductor (``models.stream_compile``; real arithmetic:
        Inductor generates no code for complex operators). Results equal the eager path within
        float tolerance; each timeframe compiles on its first bar, for the weights the encoder
        has then (a stream started after the weights change compiles again).
        """
        if self.compiled_step_and_fuse is None:
            self.compiled_step_and_fuse = CompiledStreamSteps(self)
        self._drop_stale_stream_steps()

    def _drop_stale_stream_steps(self) -> None:
        """Start the compiled streaming steps afresh where their weights are no longer the
        encoder's (each timeframe then compiles again on its next bar)."""
        steps = self.compiled_step_and_fuse
        if steps is not None and not steps.matches():
            self.compiled_step_and_fuse = CompiledStreamSteps(self)

    def timeframe_encoder(self, timeframe: str) -> TimeframeEncoder:
        return cast(TimeframeEncoder, self.encoders[timeframe])

    def check_features(self, features: Mapping[str, Tensor], check_finite: bool = False) -> int:
        """Validate a features dict; returns the batch size. Raises ValueError naming the problem."""
        if set(features) != set(self.timeframes):
            raise ValueError(
                f"features must have exactly the timeframes {list(self.timeframes)}, "
                f"got {sorted(features)}"
            )
        batch = None
        for tf in self.timeframes:
            x = features[tf]
            if x.dim() != 3 or x.shape[-1] != self.feature_dims[tf] or x.shape[1] < 1:
                raise ValueError(
                    f"features[{tf!r}] must be (B, L>=1, {self.feature_dims[tf]}), "
                    f"got {tuple(x.shape)}"
                )
            if check_finite and not bool(torch.isfinite(x).all()):
                bad = (~torch.isfinite(x)).nonzero()[0].tolist()
                raise ValueError(
                    f"features[{tf!r}] contain NaN/inf (first at [sample, bar, feature] = {bad}); "
                    "features must be finite and standardized"
                )
            if batch is None:
                batch = x.shape[0]
            elif x.shape[0] != batch:
                raise ValueError(
                    f"features[{tf!r}] has batch size {x.shape[0]}, "
                    f"features[{self.timeframes[0]!r}] has {batch}"
                )
        assert batch is not None
        return batch

    def summaries(
        self,
        features: Mapping[str, Tensor],
        kernels: Mapping[str, Sequence[Tensor]] | None = None,
    ) -> Tensor:
        """(B, n_timeframes, d_model): the last position of each timeframe stack
        (``kernels``: ``inference_kernels``, computed beforehand)."""
        return torch.stack(
            [
                self.timeframe_encoder(tf)(features[tf], None if kernels is None else kernels[tf])
                for tf in self.timeframes
            ],
            dim=1,
        )

    def inference_kernels(self, features: Mapping[str, Tensor]) -> dict[str, list[Tensor]]:
        """Every stack's ``TimeframeEncoder.inference_kernels`` for the windows' lengths."""
        return {
            tf: self.timeframe_encoder(tf).inference_kernels(features[tf].shape[1])
            for tf in self.timeframes
        }

    def fuse(self, summaries: Tensor) -> Tensor:
        """Cross-timeframe attention and projection: (B, T, d_model) → (B, context_dim)."""
        tokens = summaries + self.timeframe_embedding
        if self.attn is not None and self.attn_norm is not None:
            q = self.attn_norm(tokens)
            attended, _ = self.attn(q, q, q, need_weights=False)
            tokens = tokens + self.dropout(attended)
        return self.out_norm(self.proj(tokens.flatten(1)))

    def forward(
        self,
        features: Mapping[str, Tensor],
        kernels: Mapping[str, Sequence[Tensor]] | None = None,
    ) -> Tensor:
        """{tf: (B, L_tf, F_tf)} → context (B, context_dim); ``kernels``: see ``summaries``."""
        return self.fuse(self.summaries(features, kernels))

    def step_and_fuse(
        self,
        timeframe: str,
        bar: Tensor,
        states: Sequence[Tensor],
        coefficients: Sequence[StepCoefficients],
        summaries: Sequence[Tensor],
    ) -> StepOutput:
        """One new bar of ``timeframe`` through its stack in real arithmetic
        (``TimeframeEncoder.step_real``), then the context with that timeframe's new summary in
        place of its entry in ``summaries`` (one (B, d_model) per timeframe, in order).

        Returns:
            context (B, context_dim), the new summary (B, d_model) and the new real states.
        """
        summary, new_states = self.timeframe_encoder(timeframe).step_real(bar, states, coefficients)
        tokens = [
            summary if tf == timeframe else s
            for tf, s in zip(self.timeframes, summaries, strict=True)
        ]
        return self.fuse(torch.stack(tokens, dim=1)), summary, new_states

    def start_stream(self, features: Mapping[str, Tensor]) -> EncoderStream:
        """Run every stack once over its window and keep the states for streaming updates."""
        self.check_features(features)
        self._drop_stale_stream_steps()
        summaries: dict[str, Tensor] = {}
        states: dict[str, list[Tensor]] = {}
        for tf in self.timeframes:
            summaries[tf], states[tf] = self.timeframe_encoder(tf).prime(features[tf])
        return EncoderStream(self, summaries, states)


class EncoderStream:
    """Streaming encoder state (use in eval mode). Not a module: holds tensors only."""

    def __init__(
        self,
        encoder: MultiTimeframeEncoder,
        summaries: dict[str, Tensor],
        states: dict[str, list[Tensor]],
    ) -> None:
        self.encoder = encoder
        self.summaries = summaries
        self.states = states
        self.bars_seen = dict.fromkeys(summaries, 0)
        #: per timeframe, the blocks' S4D step coefficients the compiled ``advance`` uses
        self.coefficients: dict[str, list[StepCoefficients]] = {}

    def update(self, timeframe: str, bar: Tensor) -> None:
        """Consume one newly closed bar of ``timeframe``: features (B, F_tf)."""
        self._check(timeframe)
        self.summaries[timeframe], self.states[timeframe] = self.encoder.timeframe_encoder(
            timeframe
        ).step(bar, self.states[timeframe])
        self.bars_seen[timeframe] += 1

    def context(self) -> Tensor:
        """The context (B, context_dim) from the current summaries."""
        summaries = torch.stack([self.summaries[tf] for tf in self.encoder.timeframes], dim=1)
        return self.encoder.fuse(summaries)

    def advance(self, bars: Sequence[tuple[str, Tensor]]) -> Tensor:
        """``update`` with each (timeframe, features (B, F_tf)) in turn, then ``context()``:
        what a live forecast needs when bars close. After ``compile_stream`` (eval mode, no
        autograd) each bar is one compiled ``step_and_fuse`` call; the stream then keeps the
        S4D coefficients of the weights it first saw (a stream serves one fixed model)."""
        encoder = self.encoder
        compiled = encoder.compiled_step_and_fuse
        if compiled is None or encoder.training or torch.is_grad_enabled():
            for timeframe, bar in bars:
                self.update(timeframe, bar)
            return self.context()
        context = None
        for timeframe, bar in bars:
            self._check(timeframe)
            if timeframe not in self.coefficients:
                self.coefficients[timeframe] = encoder.timeframe_encoder(
                    timeframe
                ).step_coefficients()
            context, summary, real = compiled(  # contiguous inputs: one library per timeframe
                timeframe,
                bar.contiguous(),
                [torch.view_as_real(s.contiguous()) for s in self.states[timeframe]],
                self.coefficients[timeframe],
                [self.summaries[tf] for tf in encoder.timeframes],
            )
            self.summaries[timeframe] = summary
            self.states[timeframe] = [torch.view_as_complex(s.contiguous()) for s in real]
            self.bars_seen[timeframe] += 1
        return context if context is not None else self.context()

    def _check(self, timeframe: str) -> None:
        if timeframe not in self.states:
            raise ValueError(f"unknown timeframe {timeframe!r}; streams: {list(self.states)}")
