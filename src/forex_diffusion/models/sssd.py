"""SSSD: multi-timeframe S4D encoder + horizon embeddings + conditional diffusion head.

Training (``forward``): the encoder runs once per batch; each (sample, horizon) target gets
``noise_draws`` independent (timestep, noise) pairs; the loss is the per-horizon MSE of the
network output against ε (or v), weighted by ``model.loss.horizon_weights``, plus an optional
x0-consistency term.

Inference (``inference_forward``): the encoder runs once per forecast, the conditioning part of
the head's FiLM once per (forecast, horizon), the timestep part once per denoising step, and all
samples × horizons × forecasts go through the head as one batch per step. Everything is in the
model's scaled target space (the caller multiplies by its volatility scale).

Shapes: B batch, H horizons, D noise draws, S samples, C context size.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from forex_diffusion.config.sssd_config import ModelConfig
from forex_diffusion.dataset.collate import ASSET_KEY
from forex_diffusion.forecast import SampleForecast, summarize
from forex_diffusion.models.diffusion_head import DiffusionHead
from forex_diffusion.models.diffusion_scheduler import (
    DiffusionScheduler,
    Generators,
    Sampler,
    randn,
)
from forex_diffusion.models.s4_layer import S4D
from forex_diffusion.models.sssd_encoder import EncoderStream, MultiTimeframeEncoder


@dataclass(frozen=True)
class LossOutput:
    """Training loss.

    Attributes:
        loss: scalar total (weighted diffusion loss + consistency_weight · consistency).
        per_horizon: (H,) unweighted diffusion MSE of each horizon column.
        diffusion_loss: scalar weighted diffusion loss.
        consistency_loss: scalar x0-consistency term (zero tensor when its weight is 0).
    """

    loss: Tensor
    per_horizon: Tensor
    diffusion_loss: Tensor
    consistency_loss: Tensor


@dataclass(frozen=True)
class HorizonForecast:
    """One horizon of a forecast; every tensor has leading dim B."""

    horizon_minutes: int
    samples: Tensor  # (B, S)
    mean: Tensor  # (B,)
    std: Tensor  # (B,)
    q05: Tensor  # (B,)
    q50: Tensor  # (B,)
    q95: Tensor  # (B,)


@dataclass(frozen=True)
class ForecastOutput:
    """Predictive samples in the scaled target space, a tensor view of a ``SampleForecast``.

    Attributes:
        horizons: horizon minutes of the H columns.
        samples: (B, H, S).

    ``mean``, ``std``, ``q05``, ``q50``, ``q95`` are the (B, H) summaries of
    ``forex_diffusion.forecast`` (computed on first use, on the samples' device and dtype).
    """

    horizons: tuple[int, ...]
    samples: Tensor

    def forecast(self) -> SampleForecast:
        """The samples (B, H, S) as the shared forecast type (numpy)."""
        return SampleForecast.of(self.samples)

    @cached_property
    def _summary(self) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        return summarize_samples(self.samples)

    @property
    def mean(self) -> Tensor:
        return self._summary[0]

    @property
    def std(self) -> Tensor:
        return self._summary[1]

    @property
    def q05(self) -> Tensor:
        return self._summary[2]

    @property
    def q50(self) -> Tensor:
        return self._summary[3]

    @property
    def q95(self) -> Tensor:
        return self._summary[4]

    def for_horizon(self, minutes: int) -> HorizonForecast:
        if minutes not in self.horizons:
            raise KeyError(f"horizon {minutes} min not in this forecast {list(self.horizons)}")
        j = self.horizons.index(minutes)
        return HorizonForecast(minutes, self.samples[:, j], *(part[:, j] for part in self._summary))

    def by_horizon(self) -> dict[int, HorizonForecast]:
        return {h: self.for_horizon(h) for h in self.horizons}


def summarize_samples(samples: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """mean, std, q05, q50, q95 over the last axis of (..., S) samples, by
    ``forex_diffusion.forecast.summarize``, as float32 tensors on the samples' device."""
    s = summarize(SampleForecast.of(samples.float()))
    parts = (s.mean, s.std, s.q05, s.q50, s.q95)
    return tuple(  # type: ignore[return-value]
        torch.as_tensor(np.asarray(p, dtype=np.float32), device=samples.device) for p in parts
    )


class SamplingKey(NamedTuple):
    """What one compiled sampling loop is specialised to (see ``compile_sampling``)."""

    rows: int  # forecasts × horizons
    num_samples: int
    sampler: str
    steps: int


class EncoderKey(NamedTuple):
    """What one compiled encoder is specialised to (see ``compile_encoder``)."""

    batch: int
    lengths: tuple[int, ...]  # window length per timeframe, in the model's order


class SSSDModel(nn.Module):
    """The SSSD forecaster.

    Sampling settings (number of samples, sampler, steps, eta) are not part of the network: its
    caller (the inference service, the training metrics) passes them to ``inference_forward``.
    ``forex_diffusion.models.build.build_sssd_model`` builds one from the application config.

    Args:
        config: the network's own configuration (encoder, head, diffusion, loss).
        timeframes: the input timeframes, in the order their encoders are stacked.
        feature_dims: number of features per timeframe, e.g. {"5m": 40, "15m": 40, ...}.
        horizons: forecast horizons in minutes, one per horizon embedding (and loss weight).
    """

    horizon_weights: Tensor  # (n_horizons,) loss weights (non-persistent buffer)

    def __init__(
        self,
        config: ModelConfig,
        timeframes: Sequence[str],
        feature_dims: Mapping[str, int],
        horizons: Sequence[int],
    ) -> None:
        super().__init__()
        self.config = config
        self._compiled_solve: Callable[..., Tensor] | None = None  # see compile_sampling
        self._compiled_keys: set[SamplingKey] | None = None
        self._compiled_encoder: Callable[..., Tensor] | None = None  # see compile_encoder
        self._compiled_encoder_keys: set[EncoderKey] | None = None
        mcfg, ecfg = config, config.encoder
        self.timeframes = tuple(timeframes)
        self.horizons = tuple(int(h) for h in horizons)
        self.feature_dims = {tf: int(feature_dims[tf]) for tf in feature_dims}
        self.encoder = MultiTimeframeEncoder(
            timeframes=self.timeframes,
            feature_dims=self.feature_dims,
            d_model=ecfg.d_model,
            n_layers=ecfg.n_layers,
            state_dim=ecfg.state_dim,
            init=ecfg.init,
            dt_min=ecfg.dt_min,
            dt_max=ecfg.dt_max,
            dropout=ecfg.dropout,
            cross_attention=ecfg.cross_attention,
            attention_heads=ecfg.attention_heads,
            context_dim=ecfg.context_dim,
        )
        self.horizon_embedding = nn.Embedding(len(self.horizons), mcfg.horizon_embedding_dim)
        # a global model: one context offset per asset, row 0 for an asset it never saw
        self.assets = tuple(mcfg.assets)
        self.asset_dropout = float(mcfg.asset_dropout)
        self.asset_embedding: nn.Embedding | None = None
        if self.assets:
            self.asset_embedding = nn.Embedding(len(self.assets) + 1, ecfg.context_dim)
            nn.init.zeros_(self.asset_embedding.weight)
        hcfg = mcfg.head
        self.head = DiffusionHead(
            cond_dim=ecfg.context_dim + mcfg.horizon_embedding_dim,
            hidden_dim=hcfg.hidden_dim,
            n_blocks=hcfg.n_blocks,
            timestep_embedding_dim=hcfg.timestep_embedding_dim,
            dropout=hcfg.dropout,
        )
        dcfg = mcfg.diffusion
        self.scheduler = DiffusionScheduler(
            dcfg.train_steps, dcfg.cosine_s, dcfg.max_beta, dcfg.prediction
        )
        self.noise_draws = mcfg.loss.noise_draws
        self.consistency_weight = mcfg.loss.consistency_weight
        self.register_buffer(
            "horizon_weights",
            torch.tensor(mcfg.loss.horizon_weights, dtype=torch.float32),
            persistent=False,
        )

    # ------------------------------------------------------------------ parameters

    def param_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(ssm_params, other_params): S4D dt and A (own group: lower lr, no weight decay), rest."""
        ssm = [p for m in self.modules() if isinstance(m, S4D) for p in m.ssm_parameters()]
        ssm_ids = {id(p) for p in ssm}
        other = [p for p in self.parameters() if id(p) not in ssm_ids]
        return ssm, other

    def decay_split(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(decayed, not_decayed) among the non-SSM parameters (AdamW's two groups).

        Only matrices are decayed. Biases, LayerNorm gains, the S4D skip ``D`` (all 1-d) and
        the head's zero-initialised output layer are not: decaying them pulls the norm gains
        and the output scale towards zero, i.e. towards a too-narrow forecast.
        """
        _, other = self.param_groups()
        out_ids = {id(p) for p in self.head.out.parameters()}
        decayed = [p for p in other if p.ndim >= 2 and id(p) not in out_ids]
        kept = {id(p) for p in decayed}
        return decayed, [p for p in other if id(p) not in kept]

    # ------------------------------------------------------------------ encoder

    def encode(self, features: Mapping[str, Tensor], check_finite: bool = False) -> Tensor:
        """{tf: (B, L_tf, F_tf)} (+ ``features["asset"]`` (B,) for a global model) → context
        (B, C); ValueError on bad shapes (or NaN/inf)."""
        windows = {k: v for k, v in features.items() if k != ASSET_KEY}
        batch = self.encoder.check_features(windows, check_finite)
        compiled = self._compiled_encoder
        if compiled is not None and not self.training and not torch.is_grad_enabled():
            key = EncoderKey(batch, tuple(windows[tf].shape[1] for tf in self.timeframes))
            if self._compiled_encoder_keys is None or key in self._compiled_encoder_keys:
                windows = {tf: x.contiguous() for tf, x in windows.items()}
                context = compiled(windows, self.encoder.inference_kernels(windows))
                return self.with_asset(context, features.get(ASSET_KEY))
        return self.with_asset(self.encoder(windows), features.get(ASSET_KEY))

    def compile_encoder(self, only: set[EncoderKey] | None = None) -> None:
        """Encode through a ``torch.compile`` version of the encoder's forward (in eval mode
        without autograd; under a C++ wrapper), its S4D kernels read from the caches eagerly
        and handed in. Each new ``EncoderKey`` (batch, window lengths) compiles on its first
        use; with ``only``, windows of other shapes are encoded eagerly. Results equal the
        eager path within float tolerance."""
        self._compiled_encoder = torch.compile(
            self.encoder.forward, dynamic=False, options={"cpp_wrapper": True}
        )
        self._compiled_encoder_keys = None if only is None else set(only)

    def asset_index(self, asset: str) -> int:
        """Row of ``asset`` in the asset embedding: 1 + its place in ``model.assets``, 0 (the
        unseen-asset row) for an asset the global model was not trained on."""
        name = asset.strip().upper()
        return self.assets.index(name) + 1 if name in self.assets else 0

    def with_asset(self, context: Tensor, asset: Tensor | None) -> Tensor:
        """Context (B, C) plus the asset embedding of ``asset`` (B,) indices (global models).

        Raises:
            ValueError: a global model without asset indices, or a per-asset model with them.
        """
        if self.asset_embedding is None:
            if asset is not None:
                raise ValueError(
                    f"features has an {ASSET_KEY!r} entry but this model was trained for one asset"
                )
            return context
        if asset is None:
            raise ValueError(
                f"this global model covers {list(self.assets)}: features need an {ASSET_KEY!r} "
                "entry (B,) of asset indices (model.asset_index(name); 0 = an unseen asset)"
            )
        idx = asset.to(device=context.device, dtype=torch.long).reshape(-1)
        if (
            idx.shape[0] != context.shape[0]
            or int(idx.min()) < 0
            or int(idx.max()) > len(self.assets)
        ):
            raise ValueError(
                f"asset indices must be (B={context.shape[0]},) in [0, {len(self.assets)}], got "
                f"{tuple(idx.shape)}"
            )
        return context + self.asset_embedding(idx).to(context.dtype)

    def start_stream(self, features: Mapping[str, Tensor]) -> EncoderStream:
        """Streaming encoder state primed on the windows (eval mode); see ``EncoderStream``."""
        return self.encoder.start_stream(features)

    def compile_stream(self) -> None:
        """Streaming updates and their context through compiled code (see
        ``MultiTimeframeEncoder.compile_stream``)."""
        self.encoder.compile_stream()

    def _horizon_index(self, hidx: Tensor | Sequence[int] | None, batch: int, n_h: int) -> Tensor:
        device = self.horizon_weights.device
        if hidx is None:
            if n_h != len(self.horizons):
                raise ValueError(
                    f"targets have {n_h} horizon columns but the model has {len(self.horizons)} "
                    "horizons; pass horizon_indices"
                )
            return torch.arange(n_h, device=device).expand(batch, n_h)
        idx = torch.as_tensor(hidx, device=device, dtype=torch.long)
        if idx.dim() == 1:
            idx = idx.expand(batch, idx.shape[0])
        if idx.shape != (batch, n_h):
            raise ValueError(f"horizon_indices must be ({batch}, {n_h}), got {tuple(idx.shape)}")
        if idx.numel() and (idx.min() < 0 or idx.max() >= len(self.horizons)):
            raise ValueError(
                f"horizon_indices must lie in [0, {len(self.horizons)}) (horizons "
                f"{list(self.horizons)} min), got {int(idx.min())}..{int(idx.max())}"
            )
        return idx

    def conditioning(self, context: Tensor, horizon_indices: Tensor) -> Tensor:
        """Context (B, C) + horizon embeddings of (B, H) indices → (B, H, C + E)."""
        emb = self.horizon_embedding(horizon_indices)  # (B, H, E)
        ctx = context[:, None, :].expand(-1, horizon_indices.shape[1], -1)
        return torch.cat([ctx.to(emb.dtype), emb], dim=-1)

    # ------------------------------------------------------------------ training

    def draw_noise(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        num_horizons: int | None = None,
        noise_draws: int | None = None,
        device: torch.device | str | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Timesteps (B, D, H) long and noise (B, D, H) float32 for ``forward``.

        Drawn on the generator's device (or ``device`` without a generator) and returned on
        ``device`` when given, so a CPU generator can feed a model on another device.
        """
        n_h = num_horizons if num_horizons is not None else len(self.horizons)
        d = noise_draws if noise_draws is not None else self.noise_draws
        shape = (batch_size, d, n_h)
        t = self.scheduler.sample_timesteps(shape, generator=generator, device=device)
        eps = randn(shape, generator, device)
        return t, eps

    def forward(
        self,
        features: Mapping[str, Tensor],
        targets: Tensor,
        horizon_indices: Tensor | None = None,
        generator: torch.Generator | None = None,
        timesteps: Tensor | None = None,
        noise: Tensor | None = None,
    ) -> LossOutput:
        """Weighted multi-horizon diffusion loss.

        Args:
            features: {tf: (B, L_tf, F_tf)}.
            targets: (B, H, 1) or (B, H) scaled targets.
            horizon_indices: (B, H) or (H,) indices into ``horizons``; default 0..H-1.
            generator: RNG for timesteps/noise when they are not given.
            timesteps: (B, D, H) or (B, H) integers in [0, T) (fixed ones make the loss
                deterministic, e.g. for validation).
            noise: (B, D, H), (B, H) or (B, H, 1) standard normal noise.

        Returns:
            LossOutput.
        """
        batch, n_h = targets.shape[0], targets.shape[1]
        x0 = targets.reshape(batch, n_h).float()
        hidx = self._horizon_index(horizon_indices, batch, n_h)
        t, eps = self._training_noise(batch, n_h, x0.device, generator, timesteps, noise)
        n_draws = t.shape[1]

        context = self.encode(self._asset_dropped(features, generator))  # (B, C)
        cond_film = self.head.condition_film(self.conditioning(context, hidx))  # (B, H, nb, 2, h)
        film = cond_film[:, None] + self.head.time_film_of(t)  # (B, D, H, nb, 2, h)

        x0_d = x0[:, None, :].expand(batch, n_draws, n_h)
        x_t = self.scheduler.add_noise(x0_d, eps, t)
        target = self.scheduler.training_target(x0_d, eps, t)
        out = self.head.denoise(x_t[..., None].to(film.dtype), film)[..., 0].float()  # (B, D, H)

        w = self.horizon_weights[hidx][:, None, :]  # (B, 1, H)
        norm = w.sum() * n_draws
        err = (out - target) ** 2
        per_horizon = err.mean(dim=(0, 1))
        diffusion_loss = (err * w).sum() / norm
        if self.consistency_weight > 0:
            x0_hat = self.scheduler.predict_x0(out, x_t, t)
            ab = self.scheduler.alphas_cumprod.to(device=x_t.device, dtype=x_t.dtype)[t]
            consistency = (ab * (x0_hat - x0_d) ** 2 * w).sum() / norm
            loss = diffusion_loss + self.consistency_weight * consistency
        else:
            consistency = torch.zeros((), device=x0.device)
            loss = diffusion_loss
        return LossOutput(loss, per_horizon, diffusion_loss, consistency)

    training_step = forward

    def _asset_dropped(
        self, features: Mapping[str, Tensor], generator: torch.Generator | None
    ) -> Mapping[str, Tensor]:
        """In training, a share ``asset_dropout`` of a global model's samples get the
        unseen-asset row, so that row learns a forecast for any asset."""
        asset = features.get(ASSET_KEY)
        if asset is None or not self.training or self.asset_dropout == 0:
            return features
        u = torch.rand(asset.shape[0], generator=generator, device="cpu").to(asset.device)
        return {**features, ASSET_KEY: torch.where(u < self.asset_dropout, 0, asset)}

    def _training_noise(
        self,
        batch: int,
        n_h: int,
        device: torch.device,
        generator: torch.Generator | None,
        timesteps: Tensor | None,
        noise: Tensor | None,
    ) -> tuple[Tensor, Tensor]:
        def as_bdh(x: Tensor, name: str) -> Tensor:
            if x.dim() == 3 and x.shape == (batch, n_h, 1):
                x = x[..., 0]
            if x.dim() == 2:
                x = x[:, None, :]
            if x.dim() != 3 or x.shape[0] != batch or x.shape[2] != n_h:
                raise ValueError(
                    f"{name} must be (B={batch}, D, H={n_h}) or (B, H), got {tuple(x.shape)}"
                )
            return x.to(device)

        t = as_bdh(timesteps, "timesteps").long() if timesteps is not None else None
        eps = as_bdh(noise, "noise").float() if noise is not None else None
        if t is not None and eps is not None and t.shape != eps.shape:
            raise ValueError(f"timesteps {tuple(t.shape)} and noise {tuple(eps.shape)} differ")
        if t is None or eps is None:
            given = t if t is not None else eps
            draws = given.shape[1] if given is not None else None
            t_new, eps_new = self.draw_noise(batch, generator, n_h, draws, device=device)
            t = t if t is not None else t_new
            eps = eps if eps is not None else eps_new
        return t, eps

    # ------------------------------------------------------------------ inference

    def compile_sampling(self, only: set[SamplingKey] | None = None) -> None:
        """Sample through a ``torch.compile`` version of the whole denoising loop (every head
        call and solver update fused into a few kernels: on CPU the per-op overhead, not the
        arithmetic, is what a forecast's sampling costs; a C++ wrapper runs the compiled
        kernels, so Python is not called between them). Results equal the eager path within
        float tolerance.

        Each new ``SamplingKey`` (rows = forecasts × horizons, samples, sampler, steps)
        compiles on its first use; with ``only``, the keys outside it sample eagerly, so a
        long-running service compiles once (at start-up, for the forecasts it makes on every
        bar) and never stalls on a request of another shape.
        """
        self._compiled_solve = torch.compile(
            self._solve, dynamic=False, options={"cpp_wrapper": True}
        )
        self._compiled_keys = None if only is None else set(only)

    def _solve(
        self,
        films: Tensor,
        x_T: Tensor,
        sampler: Sampler,
        steps: int,
        eta: float,
        generator: Generators,
    ) -> Tensor:
        """The denoising loop: ``x_T`` (R, S, 1) to clean samples, with step i's FiLM
        ``films[i]`` (R, 1, n_blocks, 2, hidden)."""

        def model_fn(x: Tensor, i: int, t: int) -> Tensor:
            return self.head.denoise(x, films[i])

        return self.scheduler.sample(model_fn, x_T, sampler, steps, eta, generator)

    def inference_forward(
        self,
        features: Mapping[str, Tensor],
        num_samples: int,
        sampler: Sampler,
        steps: int,
        eta: float,
        generator: Generators = None,
        horizon_indices: Sequence[int] | None = None,
    ) -> ForecastOutput:
        """Forecast distributions for a batch of windows.

        Args:
            features: {tf: (B, L_tf, F_tf)}.
            num_samples: samples per forecast (>= 2).
            sampler: ``ddim``, ``ddpm``, ``dpmpp_2m`` or ``dpmpp_2m_logsnr``.
            steps: number of denoising steps for any sampler (ddpm with steps = T is the full
                ancestral chain).
            eta: DDIM stochasticity in [0, 1] (0 for the dpmpp samplers).
            generator: RNG for the starting noise and injected noise (same generator state →
                same samples); a sequence of B generators gives forecast b its own noise
                stream, so its samples do not depend on the other rows of the batch.
            horizon_indices: which horizons (indices into ``horizons``); default all.

        Returns:
            ForecastOutput with samples (B, H, S) and summaries (B, H).
        """
        was_training = self.training
        if was_training:
            self.eval()
        try:
            with torch.inference_mode():
                context = self.encode(features, check_finite=True)
                return self.sample_from_context(
                    context, num_samples, sampler, steps, eta, generator, horizon_indices
                )
        finally:
            if was_training:
                self.train()

    def sample_from_context(
        self,
        context: Tensor,
        num_samples: int,
        sampler: Sampler,
        steps: int,
        eta: float,
        generator: Generators = None,
        horizon_indices: Sequence[int] | None = None,
    ) -> ForecastOutput:
        """Sample from a precomputed context (B, C) (e.g. ``EncoderStream.context()``); the
        sampling arguments are those of ``inference_forward``."""
        n_s, smp, n_steps, eta_v = int(num_samples), sampler, int(steps), float(eta)
        if n_s < 2:
            raise ValueError(f"num_samples must be >= 2, got {n_s}")
        hsel = list(range(len(self.horizons))) if horizon_indices is None else list(horizon_indices)
        with torch.inference_mode():
            batch = context.shape[0]
            hidx = self._horizon_index(hsel, batch, len(hsel))
            cond_film = self.head.condition_film(self.conditioning(context, hidx))
            cond_film = cond_film.reshape(batch * len(hsel), 1, *cond_film.shape[-3:])
            plan = self.scheduler.plan(smp, n_steps)
            t_all = torch.tensor([st.t for st in plan], device=context.device)
            time_film = self.head.time_film_of(t_all)  # (K, nb, 2, hidden)
            # every step's FiLM in one op: (K, B·H, 1, nb, 2, hidden)
            films = cond_film[None] + time_film[:, None, None]
            x_T = randn((batch * len(hsel), n_s, 1), generator, context.device, cond_film.dtype)
            solve = self._solve
            key = SamplingKey(batch * len(hsel), n_s, smp, n_steps)
            if self._compiled_solve is not None and (
                self._compiled_keys is None or key in self._compiled_keys
            ):
                solve = self._compiled_solve
            x0 = solve(films, x_T, smp, n_steps, eta_v, generator)
            samples = x0.reshape(batch, len(hsel), n_s).float()
        return ForecastOutput(horizons=tuple(self.horizons[i] for i in hsel), samples=samples)
