"""LightningModule around ``SSSDModel``: optimisation, deterministic validation, forecast metrics,
and the forex_diffusion contents of every checkpoint Lightning writes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor

from forex_diffusion.config.sssd_config import SSSDConfig
from forex_diffusion.errors import CheckpointError
from forex_diffusion.forecast import crps_ensemble_fair, summarize
from forex_diffusion.models.build import build_sssd_model
from forex_diffusion.models.checkpoint import checkpoint_payload
from forex_diffusion.training.ema import ema_decay_at, ema_update_, state_copy, weights_swapped
from forex_diffusion.training.schedule import warmup_cosine_factor

Batch = tuple[dict[str, Tensor], Tensor, Tensor]

# seeds of the fixed validation noise stream, disjoint from the training seed
_VAL_NOISE_SEED = 1_000_003
_VAL_FORECAST_SEED = 2_000_003
_VAL_FORECAST_DRAWS = 64  # samples per validation forecast (quantiles by the (S+1)p positions)


class SSSDLightningModule(L.LightningModule):
    """Trains ``SSSDModel`` with AdamW (SSM parameters in their own group) and warmup+cosine LR.

    Validation is deterministic: the noise and timesteps of validation batch ``k`` are drawn
    from a generator seeded with a constant plus ``k`` (the validation loader has a fixed
    order), so ``val_loss`` compares like with like across epochs. Each epoch also forecasts a
    fixed set of validation samples and logs the 90 % interval coverage and the fair CRPS.

    Args:
        config: the application config (model, training, and the sampling of the metrics).
        feature_dims: number of features per timeframe.
        feature_names, standardizer: what a checkpoint must carry besides the weights (the
            fitted feature pipeline); needed only when a checkpoint is written.
    """

    def __init__(
        self,
        config: SSSDConfig,
        feature_dims: Mapping[str, int],
        feature_names: Mapping[str, Sequence[str]] | None = None,
        standardizer: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.feature_dims = dict(feature_dims)
        self.feature_names = None if feature_names is None else dict(feature_names)
        self.standardizer = None if standardizer is None else dict(standardizer)
        self.model = build_sssd_model(config, self.feature_dims)
        self.horizons = list(config.data.horizons)
        self._forecast_batch: Batch | None = None
        self._forecast_parts: list[Batch] = []
        self._forecast_rows_fixed = False
        # the EMA of the weights (off when training.ema_decay is 0; see training.ema)
        self.ema_decay = float(config.training.ema_decay)
        self.ema: dict[str, Tensor] | None = None
        self.ema_updates = 0
        self._ema_step = 0  # the optimiser step the EMA last followed
        self._raw_weights: dict[str, Tensor] | None = None  # held aside during validation
        self._resumed_ema: dict[str, Any] | None = None

    # Checkpoints hold the bare model's weights (no "model." prefix), so that one file serves both
    # Lightning's resume and ``forex_diffusion.models.checkpoint.load_checkpoint``. With the EMA
    # on, those weights are the average and the raw ones ride along under "ema".
    def state_dict(self, *args: Any, **kwargs: Any) -> Any:
        return self.model.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        resumed, self._resumed_ema = self._resumed_ema, None
        if resumed is None:
            return self.model.load_state_dict(state_dict, strict=strict, assign=assign)
        out = self.model.load_state_dict(resumed["raw_state_dict"], strict=strict, assign=assign)
        if self.ema_decay > 0:
            own = self.model.state_dict()
            self.ema = {
                k: state_dict[k].detach().to(device=v.device, dtype=v.dtype).clone()
                for k, v in own.items()
            }
            self.ema_updates = int(resumed["updates"])
        return out

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Lightning's resume: keep the raw weights and the EMA's count for ``load_state_dict``,
        which Lightning calls next with the checkpoint's (averaged) weights."""
        self._resumed_ema = checkpoint.get("ema")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Add the config, feature names, standardizer, versions and weights digest
        (``checkpoint_payload``), so that ``load_checkpoint`` reads Lightning's file weights-only.
        With the EMA on, the payload's weights are the average and the raw ones go under "ema"."""
        if self.feature_names is None or self.standardizer is None:
            raise CheckpointError(
                "cannot write a checkpoint: SSSDLightningModule was built without the "
                "feature_names and standardizer that every checkpoint carries"
            )
        shadow = self._ema_shadow()
        if shadow is None:
            checkpoint.update(
                checkpoint_payload(self.model, self.config, self.feature_names, self.standardizer)
            )
            return
        with weights_swapped(self.model, shadow) as raw:
            payload = checkpoint_payload(
                self.model, self.config, self.feature_names, self.standardizer
            )
            # copies: the payload's tensors are the model's own, which the swap back overwrites
            payload["state_dict"] = {k: v.clone() for k, v in payload["state_dict"].items()}
        checkpoint.update(payload)
        checkpoint["ema"] = {
            "decay": self.ema_decay,
            "updates": self.ema_updates,
            "raw_state_dict": {k: v.cpu() for k, v in raw.items()},
        }

    # ------------------------------------------------------------------ EMA of the weights
    def _ema_shadow(self) -> dict[str, Tensor] | None:
        """The EMA's weights (started from the model's on first use); None when it is off."""
        if self.ema_decay <= 0:
            return None
        if self.ema is None:
            self.ema = state_copy(self.model)
        return self.ema

    def on_train_start(self) -> None:
        self._ema_step = self.trainer.global_step  # after a resume: the restored step

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """One EMA update per optimiser step (none while gradients accumulate)."""
        shadow = self._ema_shadow()
        step = self.trainer.global_step
        if shadow is None or step == self._ema_step:
            return
        self._ema_step = step
        ema_update_(shadow, self.model.state_dict(), ema_decay_at(self.ema_decay, self.ema_updates))
        self.ema_updates += 1

    def on_validation_epoch_start(self) -> None:
        shadow = self._ema_shadow()
        if shadow is not None and self._raw_weights is None:
            self._raw_weights = state_copy(self.model)
            self.model.load_state_dict(shadow)

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> Any:
        tcfg = self.config.training
        ssm_params, _ = self.model.param_groups()
        decayed, not_decayed = self.model.decay_split()
        optimizer = torch.optim.AdamW(
            [
                {"params": decayed, "lr": tcfg.learning_rate, "weight_decay": tcfg.weight_decay},
                {"params": not_decayed, "lr": tcfg.learning_rate, "weight_decay": 0.0},
                {"params": ssm_params, "lr": tcfg.ssm_learning_rate, "weight_decay": 0.0},
            ],
            betas=(0.9, 0.999),
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = min(tcfg.warmup_steps, max(0, total - 1))

        def factor(step: int) -> float:
            return warmup_cosine_factor(step, warmup, total, tcfg.min_lr_ratio)

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        features, targets, horizon_idx = batch
        out = self.model(features, targets, horizon_idx)
        bs = targets.shape[0]
        self._log_losses("train", out.loss, out.per_horizon, bs)
        opt = self.optimizers()
        if not isinstance(opt, list):
            self.log("lr", opt.param_groups[0]["lr"], batch_size=bs)
        return out.loss

    def validation_step(self, batch: Batch, batch_idx: int) -> Tensor:
        features, targets, horizon_idx = batch
        gen = torch.Generator(device="cpu").manual_seed(_VAL_NOISE_SEED + batch_idx)
        timesteps, noise = self.model.draw_noise(targets.shape[0], generator=gen)
        out = self.model(
            features,
            targets,
            horizon_idx,
            timesteps=timesteps.to(targets.device),
            noise=noise.to(targets.device),
        )
        self._log_losses("val", out.loss, out.per_horizon, targets.shape[0])
        if not self._forecast_rows_fixed:
            self._forecast_parts.append(_spread_rows(batch, self._rows_per_val_batch()))
        return out.loss

    def _rows_per_val_batch(self) -> int:
        """Rows taken from each validation batch so that the forecast rows span the whole range."""
        n_batches = self.trainer.num_val_batches
        total = int(sum(n_batches)) if isinstance(n_batches, list) else int(n_batches)
        wanted = self.config.training.val_forecast_samples
        return -(-wanted // max(1, total))

    def _log_losses(self, stage: str, loss: Tensor, per_horizon: Tensor, batch_size: int) -> None:
        """``<stage>_loss`` (progress bar) and ``<stage>_loss_h<minutes>`` from ``per_horizon`` (H,)."""
        self.log(f"{stage}_loss", loss, prog_bar=True, batch_size=batch_size)
        for h, part in zip(self.horizons, per_horizon, strict=True):
            self.log(f"{stage}_loss_h{h}", part, batch_size=batch_size)

    def on_validation_epoch_end(self) -> None:
        try:
            self._forecast_metrics_epoch_end()
        finally:
            if self._raw_weights is not None:  # training goes on with the raw weights
                self.model.load_state_dict(self._raw_weights)
                self._raw_weights = None

    def _forecast_metrics_epoch_end(self) -> None:
        if not self._forecast_rows_fixed and self._forecast_parts:
            self._forecast_batch = _concat(self._forecast_parts)
            self._forecast_parts = []
            self._forecast_rows_fixed = not self.trainer.sanity_checking
        if self._forecast_batch is None or self.config.training.val_forecast_samples == 0:
            return
        metrics = self.forecast_metrics(self._forecast_batch)
        for key, value in metrics.items():
            self.log(key, value)

    @torch.no_grad()
    def forecast_metrics(self, batch: Batch) -> dict[str, float]:
        """90 % coverage and fair CRPS (scaled target units) of fixed validation forecasts."""
        features, targets, _ = batch
        gen = torch.Generator(device="cpu").manual_seed(_VAL_FORECAST_SEED)
        icfg = self.config.inference
        forecast = self.model.inference_forward(
            features,
            num_samples=_VAL_FORECAST_DRAWS,
            sampler=icfg.sampler,
            steps=icfg.steps,
            eta=icfg.eta,
            generator=gen,
        )
        fc = forecast.forecast()  # (B, H, S)
        y = targets[..., 0].float().cpu().numpy()  # (B, H)
        summary = summarize(fc)
        coverage = float(np.mean((y >= summary.q05) & (y <= summary.q95)))
        crps = float(np.mean(crps_ensemble_fair(fc.samples, y)))
        return {"val_coverage90": coverage, "val_crps": crps}


def _spread_rows(batch: Batch, n: int) -> Batch:
    """``n`` rows evenly spaced through the batch (all when it is shorter), copied."""
    features, targets, horizon_idx = batch
    idx = torch.linspace(0, targets.shape[0] - 1, min(n, targets.shape[0])).round().long()
    idx = idx.to(targets.device)
    return (
        {k: v[idx].clone() for k, v in features.items()},
        targets[idx].clone(),
        horizon_idx[idx].clone(),
    )


def _concat(parts: list[Batch]) -> Batch:
    """One batch from row-compatible parts (same timeframes and horizons)."""
    return (
        {k: torch.cat([p[0][k] for p in parts]) for k in parts[0][0]},
        torch.cat([p[1] for p in parts]),
        torch.cat([p[2] for p in parts]),
    )
