"""Batched SSSD forecasts for many decision times, as a ``ForecastDistribution`` (SPEC §7).

The model's samples are taken as log returns (scaled output × the targets' scale), the space
the baselines are scored in too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from forex_diffusion.config.sssd_config import SSSDConfig
from forex_diffusion.dataset.candidates import Candidates
from forex_diffusion.dataset.source import build_feature_source
from forex_diffusion.dataset.windows import SSSDTimeSeriesDataset
from forex_diffusion.inference.sssd_inference import SSSDInferenceService
from forex_diffusion.models.distribution import ForecastDistribution


@dataclass(frozen=True)
class ModelInputs:
    """The dataset of the decision times the model can forecast.

    Attributes:
        dataset: samples in decision-time order (features built with the checkpoint's
            standardizer, never refitted).
        has_history: (N,) bool over the requested decision times: full feature windows exist.
    """

    dataset: SSSDTimeSeriesDataset | None
    has_history: np.ndarray


def build_model_inputs(
    candles: pd.DataFrame,
    config: SSSDConfig,
    service: SSSDInferenceService,
    times: pd.DatetimeIndex,
) -> ModelInputs:
    """Features for ``times`` (each a 5m close whose targets all exist in ``candles``).

    Decision times without full lookback windows are flagged in ``has_history``, not errors.
    """
    source = build_feature_source(candles, config, service.standardizer)
    ns = times.as_unit("ns").asi8
    cand = Candidates.evaluate(source, ns, config.data.horizons, config.features.vol_ewma_lambda)
    ok = np.asarray(cand.history_ok, dtype=bool)
    if not ok.any():
        return ModelInputs(None, ok)
    dataset = SSSDTimeSeriesDataset.from_source(
        source, config, decision_times=times[ok], require_targets=True
    )
    if not np.array_equal(dataset.decision_ns, ns[ok]):
        raise RuntimeError(
            f"the model dataset kept {len(dataset)} of {int(ok.sum())} decision times with full "
            f"windows (dropped: {dataset.dropped}); their targets should all exist"
        )
    return ModelInputs(dataset, ok)


def sssd_forecast(
    service: SSSDInferenceService,
    dataset: SSSDTimeSeriesDataset,
    *,
    num_samples: int,
    batch_size: int,
    seed: int,
    name: str,
    on_batch: Callable[[int], None] | None = None,
    calibrated: bool = False,
) -> ForecastDistribution:
    """Sample the model for every decision time of ``dataset``, ``batch_size`` per call.

    Args:
        service: the loaded model.
        dataset: N decision times (``dataset.horizons`` = the model's H horizons).
        num_samples: S samples per forecast (sampler and steps: the model's inference config).
        seed: seeds one CPU generator for the whole run (same seed, same noise).
        on_batch: called with the number of decision times done in each batch (progress).
        calibrated: apply the checkpoint's recalibration map (the raw model by default).

    Returns:
        ForecastDistribution of kind "samples", (N, H, S) log returns.
    """
    # a CPU generator: the noise is drawn on it and moved to the model's device, so a run gives
    # the same noise on any device
    generator = torch.Generator().manual_seed(seed)
    out = service.sample_log_returns(
        dataset,
        num_samples,
        generator=generator,
        batch_size=batch_size,
        on_batch=on_batch,
        calibrated=calibrated,
    )
    return ForecastDistribution.from_samples(
        name, dataset.decision_times, tuple(dataset.horizons), out
    )
