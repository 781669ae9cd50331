"""Diffusion head: a residual MLP that denoises a scalar target, conditioned through FiLM.

Every block applies FiLM (h·(1 + γ_k) + β_k) after a LayerNorm without affine (FiLM is the
affine). The FiLM parameters are a sum of a conditioning part and a timestep part,

    (γ_k, β_k) = W_k^c · SiLU(W^c cond) + W_k^t · SiLU(W^t emb(t)),

so at sampling time the conditioning part is computed once per forecast (one row per
forecast × horizon) and the timestep part once per forecast for all denoising steps (shared by
every row): the per-step work is the MLP over all samples of all horizons as one batch. The FiLM tensors carry
the scale as 1 + γ (the 1 is added to the conditioning part once), so each block costs one fused
multiply-add. The output layer is zero-initialised (the untrained head predicts 0).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps.

    Args:
        t: (...,) timesteps.
        dim: even embedding size.

    Returns:
        (..., dim) float32: [sin(t·f_i), cos(t·f_i)] with f_i = max_period^(-i/(dim/2)).
    """
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half
    )
    args = t.float()[..., None] * freqs
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


class ResidualFiLMBlock(nn.Module):
    """h + Linear(Dropout(SiLU(Linear(FiLM(LayerNorm(h)))))) on (..., hidden)."""

    def __init__(self, hidden_dim: int, dropout: float) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        # no bias: the FiLM shift right before fc1 already gives it a learned offset (fc1·β)
        self.fc1 = nn.Linear(hidden_dim, hidden_dim, bias=False)
        self.fc2 = nn.Linear(hidden_dim, hidden_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
        """``scale`` = 1 + γ and ``shift`` = β, broadcastable against h (..., hidden)."""
        z = torch.addcmul(shift, norm_rows(h), scale)
        z = self.fc2(self.dropout(F.silu(self.fc1(z))))
        return h + z


class DiffusionHead(nn.Module):
    """Denoiser ε̂/v̂(x_t, t, cond) for a scalar target.

    Args:
        cond_dim: size of the conditioning vector (context + horizon embedding).
        hidden_dim: MLP width.
        n_blocks: residual blocks.
        timestep_embedding_dim: size of the sinusoidal timestep embedding (even).
        dropout: dropout inside the blocks.
    """

    def __init__(
        self,
        cond_dim: int,
        hidden_dim: int = 64,
        n_blocks: int = 3,
        timestep_embedding_dim: int = 128,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.n_blocks = n_blocks
        self.timestep_embedding_dim = timestep_embedding_dim
        self.in_proj = nn.Linear(1, hidden_dim)
        self.cond_mlp = nn.Sequential(nn.Linear(cond_dim, hidden_dim), nn.SiLU())
        self.cond_film = nn.Linear(hidden_dim, n_blocks * 2 * hidden_dim)
        self.time_mlp = nn.Sequential(nn.Linear(timestep_embedding_dim, hidden_dim), nn.SiLU())
        self.time_film = nn.Linear(hidden_dim, n_blocks * 2 * hidden_dim, bias=False)
        self.blocks = nn.ModuleList(ResidualFiLMBlock(hidden_dim, dropout) for _ in range(n_blocks))
        self.out = nn.Linear(hidden_dim, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def condition_film(self, cond: Tensor) -> Tensor:
        """Conditioning part of FiLM incl. the 1 of the scale: (..., cond_dim) → (..., nb, 2, hidden)."""
        f = self.cond_film(self.cond_mlp(cond))
        f = f.reshape(*f.shape[:-1], self.n_blocks, 2, self.hidden_dim)
        one = torch.tensor([1.0, 0.0], dtype=f.dtype, device=f.device)[:, None]
        return f + one

    def time_film_of(self, t: Tensor) -> Tensor:
        """Timestep part of FiLM: (...,) timesteps → (..., n_blocks, 2, hidden)."""
        emb = timestep_embedding(t, self.timestep_embedding_dim).to(self.in_proj.weight.dtype)
        f = self.time_film(self.time_mlp(emb))
        return f.reshape(*f.shape[:-1], self.n_blocks, 2, self.hidden_dim)

    def denoise(self, x_t: Tensor, film: Tensor) -> Tensor:
        """Run the MLP.

        Args:
            x_t: (..., 1) noisy targets.
            film: (..., n_blocks, 2, hidden) = condition_film + time_film_of, broadcastable
                against x_t's leading dims.

        Returns:
            (..., 1) network output (ε̂ or v̂).
        """
        # in_proj of a scalar: x·w + b as one fused op (same as self.in_proj(x_t))
        h = torch.addcmul(self.in_proj.bias, x_t, self.in_proj.weight[:, 0])
        if self.training or torch.is_grad_enabled():
            # one unbind (its backward is one stack) rather than 2·n_blocks slices (each slice's
            # backward fills a zero tensor of film's size)
            parts = film.flatten(-3, -2).unbind(-2)
            for k, block in enumerate(self.blocks):
                h = block(h, parts[2 * k], parts[2 * k + 1])
        else:
            h = self._blocks_inplace(h, film)
        return self.out(norm_rows(h))

    def _blocks_inplace(self, h: Tensor, film: Tensor) -> Tensor:
        """The blocks without autograd or dropout: the same arithmetic as ``ResidualFiLMBlock``
        with functional calls and in-place SiLU and residual add (fewer allocations per step)."""
        for k, block in enumerate(self.blocks):
            assert isinstance(block, ResidualFiLMBlock)
            z = torch.addcmul(film[..., k, 1, :], norm_rows(h), film[..., k, 0, :])
            z = F.silu(F.linear(z, block.fc1.weight), inplace=True)
            h += F.linear(z, block.fc2.weight, block.fc2.bias)
        return h

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """ε̂/v̂ for rows with their own timestep and conditioning.

        Args:
            x_t: (R, 1); t: (R,) timesteps; cond: (R, cond_dim).

        Returns:
            (R, 1).
        """
        return self.denoise(x_t, self.condition_film(cond) + self.time_film_of(t))


def norm_rows(h: Tensor) -> Tensor:
    """LayerNorm over the last axis without affine, (..., hidden) → (..., hidden): computed by
    ``F.group_norm`` with one group over (rows, 1, hidden), which the CPU runs faster than
    ``F.layer_norm`` for a few dozen features (``benchmarks/bench_speed.py``); the same
    normalisation within float tolerance."""
    return F.group_norm(h.reshape(-1, 1, h.shape[-1]), 1).view(h.shape)
