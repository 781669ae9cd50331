"""The inference service: raw candles in, a calibrated multi-horizon forecast out (SPEC §2, §8).

```python
service = load_sssd_inference_service("EURUSD")
pred = service.predict(df=candles, num_samples=100, sampler="ddim")
service.get_direction(pred, horizon=5), service.get_directional_confidence(pred, horizon=5)
```

Features are built from the candles exactly as in training (same pipeline, the checkpoint's
standardizer, never refitted), on the tail of the frame that the windows and the feature
warm-up need. The forecast is made as of the close of the latest complete 5m bar (or of the
latest one closing at or before ``asof``).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import torch
from cachetools import TTLCache
from loguru import logger

from forex_diffusion.calibration import Recalibrator, load_recalibrator, pooled_location
from forex_diffusion.config.sssd_config import (
    DEFAULT_CONFIG_PATH,
    InferenceConfig,
    SSSDConfig,
    config_for_asset,
    load_sssd_config,
)
from forex_diffusion.data.candles import infer_base_timeframe, validate_candles
from forex_diffusion.data.resample import resample_ohlc
from forex_diffusion.dataset.collate import ASSET_KEY
from forex_diffusion.dataset.multi_asset import (
    GLOBAL_ASSET,
    asset_calibration,
    asset_standardizer,
)
from forex_diffusion.dataset.windows import SSSDTimeSeriesDataset
from forex_diffusion.errors import CheckpointError, ConfigError, DataError, NotFoundError
from forex_diffusion.features.standardizer import Standardizer
from forex_diffusion.features.targets import log_return_to_price_change
from forex_diffusion.features.unified_pipeline import (
    fit_standardizer,
    multi_timeframe_features,
    required_history,
    timeframe_feature_names,
)
from forex_diffusion.inference.ensemble import SSSDEnsembleInferenceService
from forex_diffusion.inference.fallback import MODEL, ServingPlan, plan_serving, serve
from forex_diffusion.inference.live_features import LiveFeatureWindows
from forex_diffusion.inference.prediction import (
    SSSDPrediction,
    direction_from_prediction,
    directional_confidence,
)
from forex_diffusion.models.checkpoint import LoadedCheckpoint, load_checkpoint, weights_digest
from forex_diffusion.models.diffusion_scheduler import SAMPLERS, Generators, Sampler
from forex_diffusion.models.sssd import EncoderKey, SamplingKey, SSSDModel
from forex_diffusion.registry.model_cards import ModelCard
from forex_diffusion.registry.repository import Registry
from forex_diffusion.timeframes import timeframe_minutes
from forex_diffusion.timeinput import parse_utc

__all__ = [
    "SSSDEnsembleInferenceService",
    "SSSDInferenceService",
    "SSSDPrediction",
    "load_sssd_inference_service",
]

_FIVE_MIN = pd.Timedelta(minutes=5)
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU.

    Raises:
        ConfigError: a device other than auto, cpu, cuda or cuda:N, or a CUDA device on a
            machine without CUDA.
    """
    if not isinstance(device, str) or not _DEVICE.match(device):
        raise ConfigError(
            f"unknown device {device!r} (--device or inference.device): use 'auto', 'cpu', "
            "'cuda' or 'cuda:N'"
        )
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device {device!r} requested (--device or inference.device) but CUDA is not "
            "available on this machine; use 'cpu' or 'auto'"
        )
    return torch.device(device)


@dataclass(frozen=True)
class _Window:
    """The candles a forecast at ``decision_time`` needs."""

    candles: pd.DataFrame
    decision_time: pd.Timestamp
    base_timeframe: str


def features_digest(features: dict[str, torch.Tensor], *arrays: np.ndarray) -> str:
    """Digest of the model input: every timeframe's window tensor (name, shape, dtype, bytes)
    and ``arrays`` (the targets' scales and last close, which turn samples into prices)."""
    h = hashlib.blake2b(digest_size=20)
    for tf in sorted(features):
        x = features[tf].detach().cpu().contiguous()
        h.update(f"{tf}|{tuple(x.shape)}|{x.dtype}|".encode())
        h.update(x.numpy().tobytes())
    for a in arrays:
        arr = np.ascontiguousarray(a)
        h.update(f"{arr.shape}|{arr.dtype}|".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def noise_base(generator: torch.Generator | None) -> int | None:
    """One draw from the caller's generator that seeds every decision time's noise stream."""
    if generator is None:
        return None
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))


def row_generators(base: int | None, decision_ns: np.ndarray) -> list[torch.Generator] | None:
    """One generator per decision time, seeded from (``base``, the time in ns); None: global RNG."""
    if base is None:
        return None
    out = []
    for t in np.asarray(decision_ns, dtype=np.int64):
        seed = np.random.SeedSequence([base, int(t) & 0xFFFFFFFF, int(t) >> 32])
        out.append(torch.Generator().manual_seed(int(seed.generate_state(1, np.uint64)[0] >> 1)))
    return out


class SSSDInferenceService:
    """Forecasts for one asset from one trained model.

    Args:
        model: a trained ``SSSDModel`` (put in eval mode on ``device``).
        config: the model's resolved config (from its checkpoint).
        standardizer: the training standardizer (from the checkpoint).
        model_name: shown in predictions and used in the cache key.
        device: "auto", "cpu" or "cuda"; None = ``config.inference.device``.
        registry, model_id: where predictions are logged when ``inference.log_predictions``.
        clock: monotonic clock of the TTL cache (injectable for tests).
        card: the model's card on this asset from the registry (None: never evaluated here;
            a card of another asset is not used); with ``inference.fallback`` it decides per
            horizon what ``predict`` serves (``serving`` holds the decision).
    """

    def __init__(
        self,
        model: SSSDModel,
        config: SSSDConfig,
        standardizer: Standardizer,
        model_name: str | None = None,
        device: str | None = None,
        registry: Registry | None = None,
        model_id: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        checkpoint_path: Path | None = None,
        calibration: Recalibrator | None = None,
        card: ModelCard | None = None,
    ) -> None:
        self.config = config
        # a global model serves this asset through its embedding row (0 = an unseen asset)
        self.asset_row = model.asset_index(config.asset.symbol) if model.assets else None
        self.calibration = calibration
        self.device = resolve_device(device or config.inference.device)
        self.model = model.to(self.device).eval()
        self.standardizer = standardizer
        self.asset = config.asset.symbol
        self.horizons = list(config.data.horizons)
        self.model_name = model_name or config.model.name
        self.pip_size = config.asset.pip_size
        self.direction_threshold = config.inference.direction_threshold
        self.registry = registry
        self.model_id = model_id
        self.checkpoint_path = checkpoint_path
        self._cache: TTLCache[tuple[Any, ...], SSSDPrediction] = TTLCache(
            maxsize=1024, ttl=config.inference.cache_ttl_seconds, timer=clock
        )
        self.cache_hits = 0
        self.cache_misses = 0
        # identity of the weights in the cache key: the service's model is fixed at construction
        self.model_digest = weights_digest(self.model.state_dict())
        self.card = card
        self.serving: ServingPlan = plan_serving(
            card,
            self.horizons,
            config.inference.fallback,
            self.model_name,
            self.model_digest,
            asset=self.asset,
        )
        self.serving.baselines()  # a card whose baselines cannot be rebuilt fails here
        history = required_history(config)
        # calendar span that surely holds the needed bars: trading time x 7/5 for weekends + slack
        need_min = max(n * timeframe_minutes(tf) for tf, n in history.items())
        self.history_span = pd.Timedelta(minutes=int(need_min * 1.6)) + pd.Timedelta(days=4)
        if config.inference.compile:
            # sampling calls head.denoise (not head.forward): compile that (≈10 % faster on CPU
            # after a ~30 s compile, measured by the model helper)
            self.model.head.denoise = torch.compile(self.model.head.denoise)  # type: ignore[method-assign]

    def global_role(self) -> str | None:
        """How a global model serves this asset, in words (None for a per-asset model): through
        the asset's own embedding row, or, for an asset it never saw, through the unseen-asset
        row with a standardizer fitted on the asset's own history."""
        if self.asset_row is None:
            return None
        model = f"global model of {', '.join(self.model.assets)}"
        if self.asset_row:
            return f"{model}, serving {self.asset} through its own asset embedding"
        return (
            f"{model}, which never saw {self.asset}: served through the unseen-asset embedding "
            f"with a standardizer fitted on {self.asset}'s own history"
        )

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | None = None,
        registry: Registry | None = None,
        model_id: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        inference: InferenceConfig | None = None,
        asset: str | None = None,
        unseen_standardizer: Standardizer | None = None,
        card: ModelCard | None = None,
    ) -> SSSDInferenceService:
        """Service from a checkpoint file. The model, features and standardizer come from the
        checkpoint; ``inference`` (sampling defaults, cache TTL, threshold, logging, device)
        replaces the checkpoint's inference settings when given (the user's current config);
        ``device`` None = that config's ``inference.device``.

        A global model (``model.assets``) serves one ``asset``: one of its assets with that
        asset's own standardizer, or an asset it never saw through its unseen-asset embedding
        with ``unseen_standardizer`` (fitted on that asset's history: ``fit_standardizer``)."""
        loaded: LoadedCheckpoint = load_checkpoint(path, map_location="cpu")
        payload, config = loaded.standardizer, loaded.config
        calibration: Recalibrator | None = None
        if loaded.config.model.assets:
            payload, config = _global_model_asset(loaded, path, asset, unseen_standardizer)
            calibration = _global_model_calibration(loaded, config.asset.symbol)
        elif loaded.calibration is not None:
            calibration = load_recalibrator(loaded.calibration)
        standardizer = Standardizer.from_dict(payload, where=f"{path} (standardizer)")
        names = {tf: list(standardizer.feature_names(tf)) for tf in standardizer.timeframes}
        if names != loaded.feature_names:
            raise CheckpointError(
                f"checkpoint {path}: its standardizer's feature names differ from the model's "
                "feature names; the checkpoint is inconsistent, re-train the model"
            )
        produced_names = timeframe_feature_names(loaded.config.features, loaded.feature_names)
        for tf, expected in loaded.feature_names.items():
            produced = produced_names[tf]
            if expected != produced:
                missing = sorted(set(expected) - set(produced))
                extra = sorted(set(produced) - set(expected))
                raise CheckpointError(
                    f"checkpoint {path}: incompatible feature set for {tf}: the model was trained on "
                    f"features this version does not produce {missing or '(none)'}, and this version "
                    f"produces features the model does not know {extra or '(none)'}"
                    + ("" if missing or extra else " (same names, different order)")
                    + "; re-train the model with this version"
                )
        if inference is not None:
            config = config.model_copy(update={"inference": inference})
        return cls(
            loaded.model,
            config,
            standardizer,
            model_name=loaded.config.model.name,
            device=device,
            registry=registry,
            model_id=model_id,
            clock=clock,
            checkpoint_path=Path(path),
            calibration=calibration,
            card=card,
        )

    # ------------------------------------------------------------------ windows
    def _window(self, df: pd.DataFrame, asof: Any = None, allow_stale: bool = False) -> _Window:
        where = f"candles for {self.asset}"
        when = None if asof is None else parse_utc(asof, "asof")
        candles = validate_candles(df, where=where)
        base = infer_base_timeframe(candles.index.asi8, where=where)
        base_delta = pd.Timedelta(minutes=timeframe_minutes(base))
        known_until = candles.index[-1] + base_delta
        if when is not None and not allow_stale:
            self.check_staleness(when, known_until)
        cutoff = known_until if when is None else min(when, known_until)
        candles = candles[candles.index + base_delta <= cutoff]  # only closed base bars
        candles = candles[candles.index >= cutoff - self.history_span]
        if candles.empty:
            raise DataError(f"candles for {self.asset}: no complete bar before {cutoff}")
        bars5 = resample_ohlc(candles, "5m", base_timeframe=base, asof=cutoff)
        if bars5.empty:
            raise DataError(f"candles for {self.asset}: no complete 5m bar closes by {cutoff}")
        decision = bars5.index[-1] + _FIVE_MIN
        return _Window(candles[candles.index < decision], decision, base)

    def check_staleness(self, asof: pd.Timestamp, latest_close: pd.Timestamp) -> None:
        """Refuse a forecast as of ``asof`` from candles whose latest bar closed at
        ``latest_close`` more than ``inference.max_staleness_minutes`` earlier.

        Raises:
            DataError: saying how old the latest bar is and how to override.
        """
        age = asof - latest_close
        limit = pd.Timedelta(minutes=self.config.inference.max_staleness_minutes)
        if age > limit:
            raise DataError(
                f"candles for {self.asset}: the latest bar closed at {latest_close} UTC, "
                f"{_age(age)} before asof {asof}; the limit is inference.max_staleness_minutes="
                f"{self.config.inference.max_staleness_minutes:g}. Import newer candles, choose "
                "an earlier asof, or allow a stale forecast (--allow-stale, allow_stale=True)."
            )

    def config_for_base(self, base_timeframe: str) -> SSSDConfig:
        """The model's config with candles of ``base_timeframe`` (features depend on it)."""
        if base_timeframe == self.config.asset.base_timeframe:
            return self.config
        if self.config.features.realized and base_timeframe != "1m":
            raise DataError(
                f"model {self.model_name} uses realised-volatility inputs (features.realized) "
                f"computed from the 1-minute candles inside each 5m bar; {base_timeframe} "
                "candles do not carry them: pass 1m candles (or use a model trained with "
                "features.realized=false)"
            )
        return self.config.with_overrides([f"asset.base_timeframe={base_timeframe}"])

    def _dataset(
        self, candles: pd.DataFrame, base: str, times: Sequence[pd.Timestamp]
    ) -> SSSDTimeSeriesDataset:
        return SSSDTimeSeriesDataset.from_candles(
            candles,
            self.config_for_base(base),
            self.standardizer,
            decision_times=times,
            require_targets=False,
        )

    def _window_dataset(self, win: _Window) -> SSSDTimeSeriesDataset:
        return self._dataset(win.candles, win.base_timeframe, [win.decision_time])

    def live_windows(self, base_timeframe: str | None = None) -> LiveFeatureWindows:
        """Incremental feature windows for this model: push new candles, read model inputs
        without recomputing the history's features (see ``inference.live_features``)."""
        base = base_timeframe or self.config.asset.base_timeframe
        return LiveFeatureWindows(self.config_for_base(base), self.standardizer)

    def build_features(self, df: pd.DataFrame, asof: Any = None) -> SSSDTimeSeriesDataset:
        """The one-sample dataset (standardized windows, scale, last close) for the decision
        time of ``df`` as of ``asof``: the "prepared features" of a forecast."""
        return self._window_dataset(self._window(df, asof))

    # ------------------------------------------------------------------ forecasting
    def _sample(
        self,
        features: dict[str, torch.Tensor],
        num_samples: int,
        sampler: str,
        steps: int,
        eta: float,
        generator: Generators,
        decision_ns: np.ndarray,
        calibrated: bool = False,
        rows: np.ndarray | None = None,
    ) -> np.ndarray:
        """Scaled-target samples (B, H, S) as float64 (recalibrated when ``calibrated``, with the
        map of each forecast's decision time ``decision_ns`` (B,) where the map depends on it).

        ``rows`` (B,): the forecasts are of ``features`` rows ``rows`` (the features hold each
        distinct window once, so the encoder runs once per window; each forecast still draws
        its own noise, as ``inference_forward`` on the repeated windows would)."""
        feats = self._with_asset_rows({tf: x.to(self.device) for tf, x in features.items()})
        with torch.inference_mode():
            if rows is None:
                out = self.model.inference_forward(
                    feats,
                    num_samples=num_samples,
                    sampler=cast(Sampler, sampler),
                    steps=steps,
                    eta=eta,
                    generator=generator,
                )
            else:
                context = self.model.encode(feats, check_finite=True)
                out = self.model.sample_from_context(
                    context[torch.as_tensor(rows, device=context.device)],
                    num_samples,
                    cast(Sampler, sampler),
                    steps,
                    eta,
                    generator,
                )
        return self._recalibrate(out.samples.double().cpu().numpy(), decision_ns, calibrated)

    def _asset_rows(self, batch: int) -> torch.Tensor | None:
        """(B,) embedding rows of this service's asset for a global model, else None."""
        if self.asset_row is None:
            return None
        return torch.full((batch,), self.asset_row, dtype=torch.long, device=self.device)

    def _with_asset_rows(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        rows = self._asset_rows(next(iter(features.values())).shape[0])
        return features if rows is None else {**features, ASSET_KEY: rows}

    def uses_calibration(self, calibrated: bool | None) -> bool:
        """Whether a forecast asked with ``calibrated`` (None: ``inference.calibrated``) is
        recalibrated: only when the checkpoint carries a map."""
        want = self.config.inference.calibrated if calibrated is None else bool(calibrated)
        if want and calibrated and self.calibration is None:
            raise ConfigError(
                f"model {self.model_name} has no calibration; fit one with "
                "`forex-diffusion calibrate` or ask for calibrated=False"
            )
        return want and self.calibration is not None

    def recalibrate(self, samples: np.ndarray, decision_ns: np.ndarray) -> np.ndarray:
        """The checkpoint's map applied to (N, H, S) samples of scaled targets or log returns
        of forecasts made at ``decision_ns`` (N,) UTC nanoseconds (the map is equivariant to
        each forecast's positive scale)."""
        if self.calibration is None:
            raise ConfigError(f"model {self.model_name} has no calibration")
        return self._recalibrate(samples, decision_ns, True)

    def _recalibrate(
        self, scaled: np.ndarray, decision_ns: np.ndarray, calibrated: bool
    ) -> np.ndarray:
        """Apply the quantile map (per horizon, or per horizon and session of the decision time
        ``decision_ns`` (B,)) to (B, H, S) samples (a monotone map of each forecast's samples,
        so scaling by the positive target scale later commutes with it)."""
        if not calibrated or self.calibration is None:
            return scaled
        out = np.empty_like(scaled)
        for j, h in enumerate(self.horizons):
            out[:, j, :] = self.calibration.transform_at(h, scaled[:, j, :], decision_ns)
        return out

    def _to_predictions(
        self,
        scaled: np.ndarray,
        scales: np.ndarray,
        last_close: np.ndarray,
        times: Sequence[pd.Timestamp],
        elapsed_ms: float,
        calibrated: bool = False,
        seed: int | None = None,
        sources: list[list[str]] | None = None,
    ) -> list[SSSDPrediction]:
        """Scaled samples (B, H, S) → price-change samples per forecast, each with what was
        served per horizon (``sources`` from the fallback policy; None: the model, the policy
        not applied on this path)."""
        log_ret = scaled * scales[:, :, None]
        change = log_return_to_price_change(log_ret, last_close[:, None, None])
        preds = []
        for b, t in enumerate(times):
            samples = {h: change[b, k] for k, h in enumerate(self.horizons)}
            preds.append(
                SSSDPrediction.from_samples(
                    samples,
                    asset=self.asset,
                    timestamp=pd.Timestamp(t),
                    last_close=float(last_close[b]),
                    inference_time_ms=elapsed_ms / len(times),
                    model_name=self.model_name,
                    pip_size=self.pip_size,
                    seed=seed,
                    direction_threshold=self.direction_threshold,
                )
            )
            preds[-1].calibrated = calibrated
            self._describe_serving(preds[-1], None if sources is None else sources[b])
        return preds

    def _describe_serving(self, pred: SSSDPrediction, sources: list[str] | None) -> None:
        """Set the prediction's per-horizon source, the card's statement and the card."""
        plan = self.serving
        pred.card = (
            None if plan.card is None else plan.card.model_dump(mode="json", exclude={"baselines"})
        )
        for j, h in enumerate(plan.horizons):
            served = MODEL if sources is None else sources[j]
            statement = h.statement
            if served != h.source:
                statement += (
                    "; not applied here (no candles for the baseline on this call path)"
                    if sources is None
                    else "; not applied here (too little history for the baseline), so the "
                    "model is served"
                )
            pred.source[h.horizon] = served
            pred.card_statement[h.horizon] = statement

    def _fallback_digest(self, win: _Window) -> str | None:
        """Digest of the bars a served baseline reads (None when no horizon serves one)."""
        if not self.serving.baselines_needed():
            return None
        times = win.candles.index.asi8
        return features_digest({}, times, win.candles["close"].to_numpy(dtype=np.float64))

    def _apply_fallback(
        self, scaled: np.ndarray, scales: np.ndarray, windows: Sequence[_Window]
    ) -> tuple[np.ndarray, list[list[str]]]:
        """The fallback policy on scaled samples (B, H, S) of the B ``windows``' decision times:
        the served scaled samples and the B × H sources (see ``inference.fallback``). Each
        baseline forecasts from the window's 5m bars closed by its decision time."""
        plan = self.serving
        if not plan.baselines_needed():
            return scaled, [[h.source for h in plan.horizons] for _ in windows]
        from forex_diffusion.models.distribution import ForecastDistribution  # scipy: lazily

        out = scaled.copy()
        sources = []
        for b, win in enumerate(windows):
            bars5 = resample_ohlc(
                win.candles, "5m", base_timeframe=win.base_timeframe, asof=win.decision_time
            )
            times = pd.DatetimeIndex([win.decision_time])
            model = ForecastDistribution.from_samples(
                self.model_name, times, self.horizons, scaled[b : b + 1] * scales[b, :, None]
            )
            baselines = {
                name: baseline.forecast(bars5, times, self.horizons)
                for name, baseline in plan.baselines().items()
            }
            served, rows = serve(plan, model, baselines)
            out[b] = served[0] / scales[b, :, None]
            sources.append(rows[0])
        return out, sources

    def _params(
        self, num_samples: int | None, sampler: str | None, steps: int | None, eta: float | None
    ) -> tuple[int, str, int, float]:
        icfg = self.config.inference
        n = icfg.num_samples if num_samples is None else int(num_samples)
        s = icfg.sampler if sampler is None else sampler
        k = icfg.steps if steps is None else int(steps)
        e = icfg.eta if eta is None else float(eta)
        where = "(the argument, else inference.{} of the config)"
        if not 2 <= n <= 10_000:
            raise ConfigError(
                f"num_samples must be in [2, 10000], got {n} {where.format('num_samples')}"
            )
        if s not in SAMPLERS:
            raise ConfigError(
                f"sampler must be one of {', '.join(SAMPLERS)}, got {s!r} {where.format('sampler')}"
            )
        train_steps = self.config.model.diffusion.train_steps
        if not 1 <= k <= train_steps:
            raise ConfigError(
                f"steps must be in [1, {train_steps}] (the model's model.diffusion.train_steps), "
                f"got {k} {where.format('steps')}"
            )
        if not 0.0 <= e <= 1.0:
            raise ConfigError(f"eta must be in [0, 1], got {e} {where.format('eta')}")
        if s in ("dpmpp_2m", "dpmpp_2m_logsnr") and e != 0.0:
            raise ConfigError(
                f"eta applies to the ddim sampler only; {s} is deterministic (got eta={e} "
                f"{where.format('eta')})"
            )
        return n, s, k, e

    def _sample_chunks(
        self,
        decision_ns: np.ndarray,
        features_of: Callable[
            [int, int], dict[str, torch.Tensor] | tuple[dict[str, torch.Tensor], np.ndarray]
        ],
        params: tuple[int, str, int, float],
        generator: torch.Generator | None,
        batch_size: int,
        calibrated: bool = False,
    ) -> Iterator[tuple[int, int, np.ndarray, float]]:
        """Sample items [lo, hi) ``batch_size`` at a time: yields (lo, hi, scaled-target samples
        (hi - lo, H, S), milliseconds spent building the features and sampling).

        With a ``generator``, each decision time gets its own noise stream seeded from one draw
        of ``generator`` and the time itself (:func:`row_generators`), so a forecast is the same
        alone or in any batch.
        """
        n, s, k, e = params
        base = noise_base(generator)
        for lo in range(0, len(decision_ns), batch_size):
            hi = min(lo + batch_size, len(decision_ns))
            started = time.perf_counter()
            gens = row_generators(base, decision_ns[lo:hi])
            feats = features_of(lo, hi)
            feats, rows = feats if isinstance(feats, tuple) else (feats, None)
            scaled = self._sample(feats, n, s, k, e, gens, decision_ns[lo:hi], calibrated, rows)
            yield lo, hi, scaled, (time.perf_counter() - started) * 1000

    def predict(
        self,
        df: pd.DataFrame,
        num_samples: int | None = None,
        sampler: str | None = None,
        steps: int | None = None,
        eta: float | None = None,
        asof: Any = None,
        generator: torch.Generator | None = None,
        calibrated: bool | None = None,
        allow_stale: bool = False,
        seed: int | None = None,
    ) -> SSSDPrediction:
        """Forecast from raw candles (1m or 5m) as of the latest complete 5m bar (or ``asof``).

        ``num_samples`` None = ``inference.num_samples`` (the ``predict`` command uses
        ``inference.forecast_samples``). ``seed`` (None = ``inference.seed``; None there too =
        fresh noise) makes the forecast bit-identical across calls and processes on the same
        device; it is recorded in the prediction.

        ``calibrated`` (default ``inference.calibrated``) applies the checkpoint's quantile
        recalibration to the samples, so every summary comes from the calibrated distribution.
        ``asof`` later than the latest bar's close by more than
        ``inference.max_staleness_minutes`` is refused unless ``allow_stale``.

        Results are cached for ``inference.cache_ttl_seconds`` keyed on what the forecast
        depends on: a digest of the model's input windows (and the scales and last close that
        turn samples into prices), the decision time, the model's weights and the sampling
        parameters. The windows are built (and checked) on every call; an explicit
        ``generator`` or a seed bypasses the cache.
        """
        started = time.perf_counter()
        n, s, k, e = self._params(num_samples, sampler, steps, eta)
        seed = self.config.inference.seed if seed is None else seed
        if seed is not None and generator is None:
            generator = torch.Generator(device=self.device).manual_seed(int(seed))
        cal = self.uses_calibration(calibrated)
        win = self._window(df, asof, allow_stale)
        dataset = self._window_dataset(win)
        features, _, _ = dataset.get_batch([0])
        key = (
            self.model_digest,
            features_digest(features, dataset.scales, dataset.last_close),
            self._fallback_digest(win),
            win.decision_time,
            n,
            s,
            k,
            e,
            cal,
        )
        if generator is None and key in self._cache:
            self.cache_hits += 1
            return self._cache[key]
        self.cache_misses += 1
        gens = row_generators(noise_base(generator), dataset.decision_ns[:1])
        scaled = self._sample(features, n, s, k, e, gens, dataset.decision_ns[:1], cal)
        scaled, sources = self._apply_fallback(scaled, dataset.scales, [win])
        elapsed = (time.perf_counter() - started) * 1000
        pred = self._to_predictions(
            scaled,
            dataset.scales,
            dataset.last_close,
            [win.decision_time],
            elapsed,
            cal,
            seed,
            sources,
        )[0]
        if generator is None:
            self._cache[key] = pred
        self._log([pred], batch_size=1)
        return pred

    def predict_features(
        self,
        dataset: SSSDTimeSeriesDataset,
        indices: Sequence[int] | np.ndarray | None = None,
        num_samples: int | None = None,
        sampler: str | None = None,
        steps: int | None = None,
        eta: float | None = None,
        generator: torch.Generator | None = None,
        batch_size: int = 64,
        calibrated: bool | None = None,
    ) -> list[SSSDPrediction]:
        """Forecasts for samples of an already built dataset, ``batch_size`` per model call."""
        params = self._params(num_samples, sampler, steps, eta)
        cal = self.uses_calibration(calibrated)
        idx = np.arange(len(dataset)) if indices is None else np.asarray(indices, dtype=np.int64)
        times = dataset.decision_times
        preds: list[SSSDPrediction] = []
        for lo, hi, scaled, ms in self._sample_chunks(
            dataset.decision_ns[idx],
            lambda a, b: dataset.get_batch(idx[a:b])[0],
            params,
            generator,
            batch_size,
            cal,
        ):
            chunk = idx[lo:hi]
            preds.extend(
                self._to_predictions(
                    scaled,
                    dataset.scales[chunk],
                    dataset.last_close[chunk],
                    [times[i] for i in chunk],
                    ms,
                    cal,
                )
            )
        return preds

    def sample_log_returns(
        self,
        dataset: SSSDTimeSeriesDataset,
        num_samples: int | None = None,
        generator: torch.Generator | None = None,
        batch_size: int = 64,
        on_batch: Callable[[int], None] | None = None,
        calibrated: bool | None = None,
        indices: Sequence[int] | np.ndarray | None = None,
    ) -> np.ndarray:
        """Log-return samples (N, H, S) float64 for the decision times of ``dataset``.

        The model's output (recalibrated per ``calibrated``, default ``inference.calibrated``)
        times the targets' scales, without price conversion or summary statistics (what an
        evaluation needs); sampler, steps and eta come from ``inference``. ``indices`` picks
        decision times (default all); ``on_batch`` is called with the size of each batch.
        """
        params = self._params(num_samples, None, None, None)
        cal = self.uses_calibration(calibrated)
        idx = np.arange(len(dataset)) if indices is None else np.asarray(indices, dtype=np.int64)
        out = np.empty((len(idx), len(self.horizons), params[0]), dtype=np.float64)
        for lo, hi, scaled, _ in self._sample_chunks(
            dataset.decision_ns[idx],
            lambda a, b: dataset.get_batch(idx[a:b])[0],
            params,
            generator,
            batch_size,
            cal,
        ):
            out[lo:hi] = scaled * dataset.scales[idx[lo:hi], :, None]
            if on_batch is not None:
                on_batch(hi - lo)
        return out

    def predict_batch(
        self,
        df: pd.DataFrame | Sequence[pd.DataFrame],
        decision_times: Sequence[Any] | None = None,
        num_samples: int | None = None,
        sampler: str | None = None,
        steps: int | None = None,
        eta: float | None = None,
        generator: torch.Generator | None = None,
        batch_size: int = 64,
        calibrated: bool | None = None,
    ) -> list[SSSDPrediction]:
        """Many forecasts in batched model calls: either many ``decision_times`` in one frame
        (each must be a 5m close with full history), or one forecast per frame of a list."""
        if isinstance(df, pd.DataFrame):
            if decision_times is None:
                return [
                    self.predict(
                        df, num_samples, sampler, steps, eta, generator=generator,
                        calibrated=calibrated,
                    )
                ]  # fmt: skip
            where = f"candles for {self.asset}"
            candles = validate_candles(df, where=where)
            times = [parse_utc(t, "decision_times") for t in decision_times]
            dataset = self._dataset(
                candles[candles.index < max(times)],
                infer_base_timeframe(candles.index.asi8, where=where),
                times,
            )
            preds = self.predict_features(
                dataset, None, num_samples, sampler, steps, eta, generator, batch_size, calibrated
            )
        else:
            windows = [self._window(f) for f in df]
            datasets = [self._window_dataset(w) for w in windows]
            if not datasets:
                return []
            preds = self._predict_many(
                datasets,
                num_samples,
                sampler,
                steps,
                eta,
                generator,
                batch_size,
                calibrated,
                windows,
            )
        self._log(preds, batch_size=len(preds))
        return preds

    def _predict_many(
        self,
        datasets: list[SSSDTimeSeriesDataset],
        num_samples: int | None,
        sampler: str | None,
        steps: int | None,
        eta: float | None,
        generator: torch.Generator | None,
        batch_size: int,
        calibrated: bool | None = None,
        windows: Sequence[_Window] | None = None,
    ) -> list[SSSDPrediction]:
        """One forecast per one-sample dataset, their features stacked ``batch_size`` at a time
        (with the fallback policy applied when the datasets' ``windows`` are given)."""

        def features_of(lo: int, hi: int) -> tuple[dict[str, torch.Tensor], np.ndarray]:
            # a dataset given several times (concurrent requests for the same bar share one
            # cached dataset) is encoded once
            first: dict[int, int] = {}
            rows = np.array([first.setdefault(id(d), len(first)) for d in datasets[lo:hi]])
            unique = list({id(d): d for d in datasets[lo:hi]}.values())
            batches = [d.get_batch([0])[0] for d in unique]
            return {tf: torch.cat([b[tf] for b in batches]) for tf in batches[0]}, rows

        params = self._params(num_samples, sampler, steps, eta)
        cal = self.uses_calibration(calibrated)
        preds: list[SSSDPrediction] = []
        decision_ns = np.concatenate([d.decision_ns[:1] for d in datasets])
        for lo, hi, scaled, ms in self._sample_chunks(
            decision_ns, features_of, params, generator, batch_size, cal
        ):
            chunk = datasets[lo:hi]
            scales = np.concatenate([d.scales for d in chunk])
            sources = None
            if windows is not None:
                scaled, sources = self._apply_fallback(scaled, scales, windows[lo:hi])
            preds.extend(
                self._to_predictions(
                    scaled,
                    scales,
                    np.concatenate([d.last_close for d in chunk]),
                    [d.decision_times[0] for d in chunk],
                    ms,
                    cal,
                    sources=sources,
                )
            )
        return preds

    def compile_sampling(self, num_samples: Sequence[int | None] = (None,)) -> list[SamplingKey]:
        """Sample one forecast through the compiled denoising loop (``SSSDModel.
        compile_sampling``) for each of ``num_samples`` (None: ``inference.num_samples``) at
        the default sampler and steps, compiling now (a warm-up forecast on a zero context
        each, so that no real forecast waits for the compiler); forecasts of other shapes stay
        eager. Returns the keys compiled."""
        keys, etas = [], []
        for n in num_samples:
            n_, s, k, e = self._params(n, None, None, None)
            keys.append(SamplingKey(len(self.model.horizons), n_, s, k))
            etas.append(e)
        self.model.compile_sampling(only=set(keys))
        context = torch.zeros(1, self.model.config.encoder.context_dim, device=self.device)
        with torch.inference_mode():
            for key, eta in zip(keys, etas, strict=True):
                self.model.sample_from_context(
                    context, key.num_samples, cast(Sampler, key.sampler), key.steps, eta
                )
        return keys

    def compile_encoder(self) -> None:
        """Encode one forecast's windows (batch 1, the configured lookbacks) through the
        compiled encoder (``SSSDModel.compile_encoder``), compiling now on zero windows; other
        shapes (batches) stay eager."""
        model = self.model
        lookbacks = self.config.data.lookbacks
        key = EncoderKey(1, tuple(lookbacks[tf] for tf in model.timeframes))
        model.compile_encoder(only={key})
        windows = self._zero_windows()
        if model.assets:
            windows[ASSET_KEY] = torch.zeros(1, dtype=torch.long, device=self.device)
        with torch.inference_mode():
            model.encode(windows)

    def _zero_windows(self) -> dict[str, torch.Tensor]:
        """One forecast's windows of zeros, {tf: (1, lookback, F_tf)}: what a compile warms on."""
        lookbacks, model = self.config.data.lookbacks, self.model
        return {
            tf: torch.zeros(1, lookbacks[tf], model.feature_dims[tf], device=self.device)
            for tf in model.timeframes
        }

    def compile_stream(self) -> None:
        """Advance the streaming encoder through compiled code (``SSSDModel.compile_stream``),
        compiling now: a warm-up stream on zero windows takes one bar of every timeframe, so
        that no live forecast waits for the compiler."""
        model = self.model
        model.compile_stream()
        with torch.inference_mode():
            stream = model.start_stream(self._zero_windows())
            stream.advance(
                [
                    (tf, torch.zeros(1, model.feature_dims[tf], device=self.device))
                    for tf in model.timeframes
                ]
            )

    def predict_from_context(
        self,
        context: torch.Tensor,
        dataset: SSSDTimeSeriesDataset,
        num_samples: int | None = None,
        sampler: str | None = None,
        steps: int | None = None,
        eta: float | None = None,
        generator: torch.Generator | None = None,
        calibrated: bool | None = None,
        adapt: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> list[SSSDPrediction]:
        """Forecasts from an already computed encoder context (B, C) (e.g. the context of a
        live ``EncoderStream``) for the B decision times of ``dataset``, whose scales and last
        closes turn the samples into price changes. Same sampling as ``predict`` (one noise
        stream per decision time): with equal contexts and generator states the samples are
        equal. ``adapt`` maps the (calibrated) log-return samples (B, H, S) to the ones
        served, keeping their shape (the live service's adaptive conformal levels)."""
        started = time.perf_counter()
        n, s, k, e = self._params(num_samples, sampler, steps, eta)
        cal = self.uses_calibration(calibrated)
        gens = row_generators(noise_base(generator), dataset.decision_ns)
        with torch.inference_mode():
            rows = self._asset_rows(context.shape[0])
            ctx = self.model.with_asset(context.to(self.device), rows)
            out = self.model.sample_from_context(ctx, n, cast(Sampler, s), k, e, gens)
        scaled = self._recalibrate(out.samples.double().cpu().numpy(), dataset.decision_ns, cal)
        if adapt is not None:
            scales = dataset.scales[:, :, None]
            scaled = adapt(scaled * scales) / scales
        elapsed = (time.perf_counter() - started) * 1000
        return self._to_predictions(
            scaled, dataset.scales, dataset.last_close, list(dataset.decision_times), elapsed, cal
        )

    # ------------------------------------------------------------------ direction
    def get_direction(self, pred: SSSDPrediction, horizon: int) -> str:
        """ "up"/"down" when P(direction) from the samples ≥ ``inference.direction_threshold``,
        else "neutral"."""
        return direction_from_prediction(pred, horizon, self.direction_threshold)

    def get_directional_confidence(self, pred: SSSDPrediction, horizon: int) -> float:
        """P(the more likely direction) from the samples, in [0.5, 1]."""
        return directional_confidence(pred, horizon)

    # ------------------------------------------------------------------ logging
    def _log(self, preds: list[SSSDPrediction], batch_size: int) -> None:
        if (
            not self.config.inference.log_predictions
            or self.registry is None
            or self.model_id is None
        ):
            return
        for p in preds:
            self.registry.log_inference(
                model_id=self.model_id,
                asset=p.asset,
                decision_time=p.timestamp.to_pydatetime(),
                horizons=p.horizons,
                prediction=p.to_dict(),
                inference_time_ms=p.inference_time_ms,
                device=str(self.device),
                batch_size=batch_size,
                num_samples=p.num_samples,
            )


def _age(delta: pd.Timedelta) -> str:
    """``3 days 4 h 5 min`` (days only when non-zero)."""
    minutes = int(delta.total_seconds() // 60)
    days, rest = divmod(minutes, 1440)
    text = f"{rest // 60} h {rest % 60} min"
    return f"{days:,} day(s) {text}" if days else text


def _global_model_asset(
    loaded: LoadedCheckpoint,
    path: str | Path,
    asset: str | None,
    unseen: Standardizer | None,
) -> tuple[dict[str, Any], SSSDConfig]:
    """(standardizer dict, config) of a global model's checkpoint seen as ``asset``'s model."""
    assets = list(loaded.config.model.assets)
    if asset is None:
        raise ConfigError(
            f"checkpoint {path} is a global model of {assets}: name the asset to forecast"
        )
    found = asset_standardizer(loaded.standardizer, asset)
    if found is None:
        if unseen is None:
            raise NotFoundError(
                f"{asset.upper()} is not one of the global model's assets {assets}: forecast it "
                "through the unseen-asset embedding with a standardizer fitted on its own "
                "history (SSSDInferenceService.from_checkpoint(..., unseen_standardizer="
                "fit_standardizer(candles, config)))"
            )
        found = unseen.to_dict()
    return found, config_for_asset(loaded.config, asset)


def _global_model_calibration(loaded: LoadedCheckpoint, asset: str) -> Recalibrator | None:
    """A global model's calibration of ``asset``: its own, or for an asset the model never saw
    the location shrink pooled over the model's assets (``pooled_location``; None without)."""
    if loaded.calibration is None:
        return None
    own = asset_calibration(loaded.calibration, asset)
    if own is not None:
        return load_recalibrator(own)
    return pooled_location(loaded.calibration.get("assets", {}))


def load_sssd_inference_service(
    asset: str,
    checkpoint_dir: str | Path | None = None,
    model_name: str | None = None,
    device: str | None = None,
    config: SSSDConfig | None = None,
    registry: Registry | None = None,
    history_end: Any = None,
) -> SSSDInferenceService:
    """The inference service for ``asset``'s best checkpoint.

    ``config`` (default: the default config file) gives the registry, the checkpoint folder and
    the inference settings; ``device`` None = its ``inference.device``.

    With ``model_name`` None the registry's best checkpoint of the asset (lowest validation
    loss) under ``checkpoint_dir`` is used; otherwise that model's best. Falls back to
    ``checkpoint_dir/ASSET/MODEL/best.ckpt`` when the registry has no entry.

    The model's card on ``asset`` (``Registry.model_card``: a global model's card of the asset
    it serves, never another asset's) comes with it: ``service.card``, and ``service.serving``
    says per horizon what ``predict`` serves (``inference.fallback``).

    A global model serving an asset it never saw fits that asset's standardizer on its stored
    history before ``history_end`` (default: all of it); an evaluation passes the start of the
    evaluated range, so that no statistic of the range it scores enters the forecasts.

    Raises:
        NotFoundError: unknown asset or model (the message lists what exists).
    """
    from forex_diffusion.registry.repository import open_registry

    cfg = config or load_sssd_config(DEFAULT_CONFIG_PATH)
    root = Path(checkpoint_dir or cfg.paths.checkpoint_dir)
    asset = asset.upper()
    reg = registry or open_registry(cfg)
    path: Path | None = None
    model_id: int | None = None
    try:
        record = reg.best_checkpoint(asset, model_name)
    except NotFoundError as exc:
        registry_error: NotFoundError | None = exc
    else:
        registry_error = None
        candidate = Path(record.path)
        if candidate.is_file() and root.resolve() in candidate.resolve().parents:
            path, model_id = candidate, record.model_id
    if path is None:
        models = sorted(p.parent.name for p in (root / asset).glob("*/best.ckpt"))
        found_global = None if models else _global_checkpoint(reg, root, model_name)
        if model_name is not None and model_name in models:
            path = root / asset / model_name / "best.ckpt"
        elif model_name is None and len(models) == 1:
            path = root / asset / models[0] / "best.ckpt"
        elif found_global is not None:
            return _serve_from_global(found_global, asset, cfg, reg, device, history_end)
        else:
            assets = (
                sorted(p.name for p in root.glob("*") if any(p.glob("*/best.ckpt")))
                if root.is_dir()
                else []
            )
            detail = f"; registry: {registry_error}" if registry_error else ""
            raise NotFoundError(
                f"no checkpoint for asset {asset!r}"
                + (f" model {model_name!r}" if model_name else "")
                + f" under {root}: models there for {asset}: {models or 'none'}; assets with checkpoints: "
                f"{assets or 'none'}{detail}. Train one with `forex-diffusion train --asset {asset}`."
            )
        if model_id is None:
            try:
                model_id = reg.get_model(asset, path.parent.name).id
            except NotFoundError:
                model_id = None
    card = reg.model_card(model_id, asset) if model_id is not None else None
    logger.info(f"loading {asset} model from {path}")
    return SSSDInferenceService.from_checkpoint(
        path,
        device=device,
        registry=reg,
        model_id=model_id,
        inference=cfg.inference,
        card=card,
    )


def _global_checkpoint(
    reg: Registry, root: Path, model_name: str | None
) -> tuple[Path, int | None] | None:
    """(best checkpoint, model id) of the global model (``model_name`` or the registry's best),
    or None when there is none."""
    try:
        record = reg.best_checkpoint(GLOBAL_ASSET, model_name)
    except NotFoundError:
        pattern = f"{model_name or '*'}/best.ckpt"
        files = sorted((root / GLOBAL_ASSET).glob(pattern))
        return (files[0], None) if files else None
    candidate = Path(record.path)
    return (candidate, record.model_id) if candidate.is_file() else None


def _serve_from_global(
    found: tuple[Path, int | None],
    asset: str,
    cfg: SSSDConfig,
    reg: Registry,
    device: str | None,
    history_end: Any = None,
) -> SSSDInferenceService:
    """The global model's service for ``asset`` (no per-asset model exists). An asset the
    global model never saw gets the unseen-asset embedding and a standardizer fitted on its
    stored history before ``history_end`` (default: all of it); the log says which. The card is the global model's card on
    ``asset``."""
    from forex_diffusion.data.store import CandleStore, resolve_data_dir

    path, model_id = found
    covered = load_checkpoint(path).config.model.assets
    unseen = None
    if asset not in covered:
        candles = CandleStore(resolve_data_dir(cfg, None)).load(asset)
        unseen = fit_history_standardizer(candles, config_for_asset(cfg, asset), end=history_end)
        until = f" before {history_end}" if history_end is not None else ""
        logger.info(
            f"no {asset} model: serving the global model {path} (trained on {covered}, not on "
            f"{asset}: unseen-asset embedding, standardizer fitted on its stored history{until})"
        )
    else:
        logger.info(f"no {asset} model: serving the global model {path} (trained on {covered})")
    return SSSDInferenceService.from_checkpoint(
        path,
        device=device,
        registry=reg,
        model_id=model_id,
        inference=cfg.inference,
        asset=asset,
        unseen_standardizer=unseen,
        card=reg.model_card(model_id, asset) if model_id is not None else None,
    )


def fit_history_standardizer(
    candles: pd.DataFrame, config: SSSDConfig, start: Any = None, end: Any = None
) -> Standardizer:
    """A standardizer for ``config``'s features fitted on the bars of the candles inside
    [start, end) (default: all of them), with the seasonal-EWMA fit the config may need fitted
    on the same bars: what a global model needs to serve an asset it never saw, from the
    history the user has (pass the training range to keep a test range out of it)."""
    first = parse_utc(start, "start") if start is not None else candles.index[0]
    last = parse_utc(end, "end") if end is not None else candles.index[-1] + pd.Timedelta(days=1)
    inside = candles[(candles.index >= first) & (candles.index < last)]
    if inside.empty:
        raise DataError(f"no candles in [{first}, {last}) to fit a standardizer on")
    # the range as the training split (dates, end inclusive), for the fits that read it
    span = config.data.splits.train.model_copy(
        update={"start": inside.index[0].date(), "end": inside.index[-1].date()}
    )
    splits = config.data.splits.model_copy(update={"train": span})
    fit_cfg = config.model_copy(update={"data": config.data.model_copy(update={"splits": splits})})
    built = multi_timeframe_features(inside, fit_cfg)
    return fit_standardizer(built.raw, fit_cfg, built.seasonal)
