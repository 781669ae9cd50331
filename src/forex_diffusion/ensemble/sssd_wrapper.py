"""``SSSDWrapper``: an SSSD model as a scikit-learn regressor over decision times.

```python
wrapper = SSSDWrapper(asset="EURUSD", horizon=60, refit=False, model_name="sssd_v1")
wrapper.fit(X, y).predict(X)          # X: flat features indexed by decision time
```

X only supplies the decision times (its columns are ignored): the wrapper reads the candle
windows it needs from the candle store, causally (each forecast sees only bars closed at its
decision time). Predictions are the mean (or median) of the Monte-Carlo samples of the
h-minute log return in basis points (``forex_diffusion.ensemble.data.BP``).

``get_params``/``set_params``/``clone`` are scikit-learn's own (every constructor argument is
stored unchanged). The mixin comes first in the bases (``RegressorMixin, BaseEstimator``), the
order scikit-learn requires for the regressor tags that ``StackingRegressor`` checks.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from loguru import logger
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from forex_diffusion.calibration.quantile_map import (
    QuantileRecalibrator,
    independent_by_horizon,
    pit_values,
)
from forex_diffusion.config.sssd_config import (
    DEFAULT_CONFIG_PATH,
    SSSDConfig,
    default_pip_size,
    load_sssd_config,
)
from forex_diffusion.data.store import CandleStore, resolve_data_dir
from forex_diffusion.ensemble.data import BP
from forex_diffusion.ensemble.purged_split import decision_times_of
from forex_diffusion.inference.sssd_inference import (
    SSSDInferenceService,
    load_sssd_inference_service,
)
from forex_diffusion.models.distribution import ForecastDistribution

Output = Literal["mean", "median"]


class SSSDWrapper(RegressorMixin, BaseEstimator):
    """SSSD as a regressor: one forecast per decision time of X, for one horizon.

    Args:
        asset: asset symbol in the candle store.
        horizon: forecast horizon in minutes (one of the model's horizons).
        model_name: the registered model to load (``refit=False``; None = the asset's best),
            or the name stem of the models trained by ``fit`` (``refit=True``; None = the
            config's ``model.name``).
        num_samples, sampler, steps: Monte-Carlo sampling (sampler/steps None = the config's
            ``inference`` settings).
        calibrated: recalibrate the samples with a quantile map fitted in ``fit`` on the PITs
            of (X, y) (with ``refit=True``: on the validation part of X only, the rows the
            model did not train on).
        output: ``"mean"`` or ``"median"`` of the samples as the point prediction.
        refit: ``fit`` trains a new model on the range of X's decision times (True) or loads
            ``model_name`` (False). Refitting trains on every decision time of the config's
            grid (``data.decision_stride``) in X's date range, not only on X's rows, from
            candles that end at X's last decision time + ``horizon``: samples whose longer
            horizons reach past that are dropped, so nothing after X's last target is read.
            Each refit is registered as its own model ``<stem>_fit<hash of X's times>``.
        config_path, preset, overrides: the configuration (``overrides`` are dotted strings).
        data_dir: candle store root (None = the config's ``paths.data_dir``).
        checkpoint_dir: where ``refit=False`` looks for checkpoints (None = the config's).
        device: torch device of the model.
        val_fraction: share of X's days used as the validation split when refitting.
        max_gap_days: ``refit=True`` refuses an X whose decision times have a hole longer
            than this (a purged k-fold training set around a held-out block): training on the
            range would train on the held-out block.
        batch_size: forecasts per model call.
        random_state: seed of the sampling noise (forecasts are reproducible).
    """

    def __init__(
        self,
        asset: str = "EURUSD",
        horizon: int = 60,
        model_name: str | None = None,
        num_samples: int = 100,
        sampler: str | None = None,
        calibrated: bool = False,
        output: Output = "mean",
        refit: bool = True,
        config_path: str | None = None,
        preset: str | None = None,
        overrides: tuple[str, ...] = (),
        data_dir: str | None = None,
        checkpoint_dir: str | None = None,
        device: str = "cpu",
        steps: int | None = None,
        val_fraction: float = 0.2,
        max_gap_days: float = 4.0,
        batch_size: int = 64,
        random_state: int = 0,
    ) -> None:
        self.asset = asset
        self.horizon = horizon
        self.model_name = model_name
        self.num_samples = num_samples
        self.sampler = sampler
        self.calibrated = calibrated
        self.output = output
        self.refit = refit
        self.config_path = config_path
        self.preset = preset
        self.overrides = overrides
        self.data_dir = data_dir
        self.checkpoint_dir = checkpoint_dir
        self.device = device
        self.steps = steps
        self.val_fraction = val_fraction
        self.max_gap_days = max_gap_days
        self.batch_size = batch_size
        self.random_state = random_state

    # ------------------------------------------------------------------ configuration
    def _config(self, extra: list[str] | None = None) -> SSSDConfig:
        overrides = list(self.overrides)
        pre = [f"asset.symbol={self.asset.upper()}"]
        if not any(o.startswith("asset.pip_size=") for o in overrides):
            pre.append(f"asset.pip_size={default_pip_size(self.asset)}")
        return load_sssd_config(
            self.config_path or DEFAULT_CONFIG_PATH,
            None,
            [*pre, *overrides, *(extra or [])],
            preset=self.preset,
        )

    def _check_params(self) -> None:
        if self.output not in ("mean", "median"):
            raise ValueError(f"output must be 'mean' or 'median', got {self.output!r}")
        if int(self.horizon) <= 0 or int(self.horizon) % 5:
            raise ValueError(f"horizon must be a positive multiple of 5 minutes: {self.horizon}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")

    def _store(self, config: SSSDConfig) -> CandleStore:
        return CandleStore(resolve_data_dir(config, self.data_dir))

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any = None) -> SSSDWrapper:
        """Train a model on the decision times of X (``refit``) or load ``model_name``.

        Raises:
            ValueError: X not indexed by decision times, a hole in X with ``refit``, or a
                horizon the model does not forecast.
        """
        self._check_params()
        times = decision_times_of(X)
        if len(times) == 0:
            raise ValueError("X has no rows")
        self._cache: dict[str, np.ndarray] = {}
        val_start: pd.Timestamp | None = None
        if self.refit:
            self.service_, val_start = self._train(times)
        else:
            cfg = self._config()
            self.service_ = load_sssd_inference_service(
                self.asset,
                checkpoint_dir=self.checkpoint_dir,
                model_name=self.model_name,
                device=self.device,
                config=cfg,
            )
            self._warn_if_seen(times)
            if self.service_.checkpoint_path is None:
                raise ValueError("the loaded SSSD service has no checkpoint path")
            self.checkpoint_path_ = self.service_.checkpoint_path
        if int(self.horizon) not in self.service_.horizons:
            raise ValueError(
                f"horizon {self.horizon} is not one of the model's horizons {self.service_.horizons}"
            )
        self.recalibrator_: QuantileRecalibrator | None = None
        if self.calibrated:
            if y is None:
                raise ValueError("calibrated=True needs y in fit (the calibration outcomes)")
            yy = np.asarray(y, dtype=np.float64)
            rows = np.ones(len(times), dtype=bool) if val_start is None else times >= val_start
            rows &= np.isfinite(yy)
            if rows.sum() < 20:
                raise ValueError(
                    f"calibrated=True: only {int(rows.sum())} calibration rows in X (need 20)"
                )
            raw = self._raw_samples(times[rows])
            pit = {int(self.horizon): pit_values(raw, yy[rows])}
            weigh = self.service_.config.inference.calibration_evidence
            self.recalibrator_ = QuantileRecalibrator.fit(
                pit,
                fitted_on={"start": str(times[rows][0]), "end": str(times[rows][-1])},
                independent=independent_by_horizon(pit, times[rows].asi8) if weigh else None,
            )
        self.n_features_in_ = int(getattr(X, "shape", (0, 0))[1]) if np.ndim(X) == 2 else 0
        self.fitted_range_ = (times[0], times[-1])
        return self

    def _warn_if_seen(self, times: pd.DatetimeIndex) -> None:
        cfg = self.service_.config
        seen_until = cfg.data.splits.val.utc_range("val").end + pd.Timedelta(
            minutes=cfg.data.effective_embargo_minutes
        )
        if times[0] < seen_until:
            logger.warning(
                "SSSDWrapper: X starts {} but model {} trained/validated on data up to {}: its "
                "forecasts there are in-sample",
                times[0],
                self.service_.model_name,
                seen_until,
            )

    def _train(self, times: pd.DatetimeIndex) -> tuple[SSSDInferenceService, pd.Timestamp]:
        """Train on candles up to the last target window of X; val = the last days of X."""
        from forex_diffusion.training.data_module import SSSDDataModule
        from forex_diffusion.training.train_sssd import SSSDTrainer

        gaps = np.diff(times.as_unit("ns").asi8) / 86_400e9
        if gaps.size and gaps.max() > self.max_gap_days:
            at = int(np.argmax(gaps))
            raise ValueError(
                f"refit=True: X's decision times jump from {times[at]} to {times[at + 1]}; "
                "training on that range would train on the held-out block between them. Use "
                "walk-forward folds (PurgedTimeSeriesSplit(walk_forward=True)) or refit=False."
            )
        d0, d1 = times[0].date(), times[-1].date()
        days = (d1 - d0).days + 1
        n_val = max(1, round(self.val_fraction * days))
        if n_val >= days:
            raise ValueError(f"refit=True: X spans {days} day(s); need at least 2")
        val0 = d1 - pd.Timedelta(days=n_val - 1)
        train_end = val0 - pd.Timedelta(days=1)
        test_day = d1 + pd.Timedelta(days=1)
        digest = hashlib.sha1(times.as_unit("ns").asi8.tobytes()).hexdigest()[:10]
        base = self._config()
        stem = self.model_name or base.model.name
        cfg = self._config(
            [
                f"model.name={stem}_fit{digest}",
                f"data.splits.train.start={d0}",
                f"data.splits.train.end={train_end}",
                f"data.splits.val.start={val0}",
                f"data.splits.val.end={d1}",
                f"data.splits.test.start={test_day}",
                f"data.splits.test.end={test_day}",
                f"seed={int(self.random_state)}",
            ]
        )
        # only candles up to the end of X's last target window: nothing later can be seen
        end = times[-1] + pd.Timedelta(minutes=int(self.horizon))
        candles = self._store(cfg).load(
            self.asset, start=None, end=end, timeframe=cfg.asset.base_timeframe
        )
        logger.info("SSSDWrapper: training {} on {} .. {}", cfg.model.name, d0, d1)
        result = SSSDTrainer(cfg, accelerator="cpu" if self.device == "cpu" else "auto").train(
            SSSDDataModule(config=cfg, candles=candles)
        )
        if result.best_checkpoint is None:
            raise RuntimeError(f"SSSDWrapper: training {cfg.model.name} ended {result.status}")
        self.checkpoint_path_ = Path(result.best_checkpoint)
        service = SSSDInferenceService.from_checkpoint(
            result.best_checkpoint, device=self.device, inference=cfg.inference
        )
        return service, pd.Timestamp(val0, tz="UTC")

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        """Pickle the checkpoint path, not the service (model, registry connection, cache)."""
        state = dict(super().__getstate__())
        state.pop("service_", None)
        state.pop("_cache", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._cache = {}
        if "checkpoint_path_" in state:
            self.service_ = SSSDInferenceService.from_checkpoint(
                self.checkpoint_path_, device=self.device, inference=self._config().inference
            )

    # ------------------------------------------------------------------ sampling
    def _raw_samples(self, times: pd.DatetimeIndex) -> np.ndarray:
        """(N, S) uncalibrated log-return samples in basis points for ``times``."""
        svc = self.service_
        candles = self._store(svc.config).load(
            self.asset, start=times[0] - svc.history_span, end=times[-1]
        )
        preds = svc.predict_batch(
            candles,
            decision_times=list(times),
            num_samples=self.num_samples,
            sampler=self.sampler,
            steps=self.steps,
            generator=torch.Generator().manual_seed(int(self.random_state)),
            batch_size=self.batch_size,
        )
        h = int(self.horizon)
        change = np.stack([p.samples[h] for p in preds])
        last = np.array([p.last_close for p in preds])[:, None]
        return np.log1p(change / last) * BP

    def sample(self, X: Any) -> np.ndarray:
        """(N, S) log-return samples in basis points (calibrated when ``calibrated``)."""
        check_is_fitted(self, "service_")
        times = decision_times_of(X)
        key = hashlib.sha1(times.as_unit("ns").asi8.tobytes()).hexdigest()
        cache = getattr(self, "_cache", {})
        if key not in cache:
            s = self._raw_samples(times)
            if self.recalibrator_ is not None:
                s = self.recalibrator_.transform_samples(int(self.horizon), s)
            cache = {key: s}  # keep only the latest X: predict/std/quantiles share it
            self._cache = cache
        return cache[key]

    def predict(self, X: Any) -> np.ndarray:
        """(N,) point forecast (mean or median of the samples), basis points."""
        s = self.sample(X)
        return np.median(s, axis=1) if self.output == "median" else s.mean(axis=1)

    def predict_std(self, X: Any) -> np.ndarray:
        """(N,) predictive standard deviation, basis points."""
        return self.sample(X).std(axis=1, ddof=1)

    def predict_quantiles(self, X: Any, levels: Any = (0.05, 0.5, 0.95)) -> np.ndarray:
        """(N, Q) predictive quantiles at ``levels``, basis points."""
        q = np.asarray(levels, dtype=np.float64)
        return np.quantile(self.sample(X), q, axis=1).T

    def predict_distribution(self, X: Any, name: str = "sssd") -> ForecastDistribution:
        """The samples as a log-return ``ForecastDistribution`` with one horizon."""
        s = self.sample(X) / BP
        return ForecastDistribution.from_samples(
            name, decision_times_of(X), (int(self.horizon),), s[:, None, :]
        )
