"""What one running service holds: settings, registry, store, models, batcher, live hub, jobs,
and the one thread that runs its PyTorch work (``TorchThread``)."""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import anyio.to_thread
import pandas as pd
import torch

from forex_diffusion.data.candles import infer_base_timeframe
from forex_diffusion.data.store import CandleStore, resolve_data_dir
from forex_diffusion.dataset.windows import SSSDTimeSeriesDataset
from forex_diffusion.errors import DataError
from forex_diffusion.inference.sssd_inference import SSSDInferenceService, SSSDPrediction
from forex_diffusion.registry.repository import Registry, open_registry
from forex_diffusion.service.batching import DynamicBatcher
from forex_diffusion.service.datasets import DatasetCache
from forex_diffusion.service.forecasts import prediction_payload
from forex_diffusion.service.jobs import JobManager
from forex_diffusion.service.live import LiveHub, LiveUpdate
from forex_diffusion.service.pool import Loaded, ModelPool
from forex_diffusion.service.settings import ServiceSettings
from forex_diffusion.service.torch_thread import TorchThread
from forex_diffusion.timeframes import timeframe_delta

# (asset, model, num_samples, sampler, steps, eta): requests with one key share a batch
BatchKey = tuple[str, str | None, int | None, str | None, int | None, float | None]
DATASETS_CACHED = 16  # store-based datasets kept (each holds its candles' feature blocks)


def live_payload(update: LiveUpdate, loaded: Loaded) -> dict[str, Any]:
    payload = prediction_payload(update.prediction, loaded.service, live=True)
    payload["reprimed"] = update.reprimed
    payload["bars_since_prime"] = update.bars_seen
    payload["adaptive_conformal"] = update.adaptive
    return payload


@dataclass
class ServiceState:
    settings: ServiceSettings
    registry: Registry
    store: CandleStore
    pool: ModelPool
    hub: LiveHub
    jobs: JobManager
    torch_thread: TorchThread
    batcher: DynamicBatcher[SSSDTimeSeriesDataset, SSSDPrediction] = field(init=False)
    datasets: DatasetCache = field(init=False)
    started: float = field(default_factory=time.monotonic)
    last_bars: dict[str, pd.Timestamp] = field(default_factory=dict)

    def __post_init__(self) -> None:
        batching = self.settings.batching
        self.batcher = DynamicBatcher(
            self._run_batch,
            self._lock_of,
            batching.max_batch,
            batching.max_wait_ms / 1000.0,
            batching.queue_size,
            self.torch_thread.run,
        )
        self.datasets = DatasetCache(DATASETS_CACHED, self.torch_thread.run)

    @classmethod
    def build(cls, settings: ServiceSettings) -> ServiceState:
        config = settings.config
        registry = open_registry(config, url=settings.db_url)
        store = CandleStore(resolve_data_dir(config, settings.data_dir))
        compile_samples = (
            tuple(dict.fromkeys((settings.live.num_samples, None)))
            if settings.compile_sampling
            else ()
        )
        torch_thread = TorchThread()
        pool = ModelPool(
            config,
            registry,
            torch_thread.run,
            settings.device,
            settings.model_name,
            compile_samples,
        )
        hub = LiveHub(
            pool.get,
            store,
            settings.live,
            live_payload,
            torch_thread.run,
            adaptive=config.inference.adaptive_conformal,
        )
        jobs = JobManager(
            settings.resolved_jobs_dir, settings.max_jobs, settings.log_tail_lines, registry
        )
        return cls(settings, registry, store, pool, hub, jobs, torch_thread)

    # ------------------------------------------------------------------ batching
    def _loaded(self, key: Hashable) -> Loaded:
        asset, model = cast(BatchKey, key)[:2]
        return self.pool.by_key(self.pool.key(asset, model))

    def _lock_of(self, key: Hashable) -> Any:
        return self._loaded(key).lock

    def _run_batch(
        self, key: Hashable, datasets: Sequence[SSSDTimeSeriesDataset]
    ) -> list[SSSDPrediction]:
        _, _, n, sampler, steps, eta = cast(BatchKey, key)
        return forecast(self._loaded(key).service, datasets, n, sampler, steps, eta)

    # ------------------------------------------------------------------ features
    def store_frame(
        self, service: SSSDInferenceService, asset: str, asof: pd.Timestamp | None
    ) -> pd.DataFrame:
        """The stored candles a forecast as of ``asof`` (default: the latest bar) needs: those
        in [end - history_span, end) closed by ``asof``, with end = ``asof`` or the latest
        bar's close. Raises DataError when no bar closed by ``asof``."""
        return self._store_frame(service, asset, asof, self._end(asset, asof))

    def _end(self, asset: str, asof: pd.Timestamp | None) -> pd.Timestamp:
        if asof is not None:
            return asof
        return self.last_bar(asset) + timeframe_delta(self.store.base_timeframe(asset))

    def _store_frame(
        self,
        service: SSSDInferenceService,
        asset: str,
        asof: pd.Timestamp | None,
        end: pd.Timestamp,
    ) -> pd.DataFrame:
        frame = self.store.load(asset, start=end - service.history_span, end=end)
        if asof is not None:
            base = timeframe_delta(infer_base_timeframe(frame.index.asi8))
            frame = frame[frame.index + base <= asof]
        if frame.empty:
            raise DataError(f"candles for {asset}: no bar closed by asof {asof}")
        return frame

    async def store_dataset(
        self, loaded: Loaded, asset: str, asof: pd.Timestamp | None
    ) -> SSSDTimeSeriesDataset:
        """The prepared features of a forecast from the store as of ``asof`` (see
        ``store_frame``): the features of ``service.predict`` on those candles, shared by the
        requests that need them until the asset's bars change (``DatasetCache``)."""
        service = loaded.service
        name = asset.upper()
        end, version = await anyio.to_thread.run_sync(
            lambda: (self._end(name, asof), self.store.version(name))
        )
        key = (id(loaded), name, end, asof, version)
        return await self.datasets.get(
            key,
            lambda: service.build_features(self._store_frame(service, name, asof, end)),
        )

    # ------------------------------------------------------------------ store
    def last_bar(self, asset: str) -> pd.Timestamp:
        """Open time of the asset's latest stored bar (read once, then kept up to date by
        POST /v1/bars). Raises NotFoundError for an asset not in the store."""
        name = asset.upper()
        if name not in self.last_bars:
            self.last_bars[name] = self.store.info(name).last
        return self.last_bars[name]

    def saw_bars(self, asset: str, last: pd.Timestamp) -> pd.Timestamp:
        name = asset.upper()
        current = self.last_bar(name)
        self.last_bars[name] = max(current, last)
        return self.last_bars[name]

    async def close(self) -> None:
        await self.batcher.close()
        self.torch_thread.close()
        self.jobs.close()
        self.registry.close()
        self.store.close()


def forecast(
    service: SSSDInferenceService,
    datasets: Sequence[SSSDTimeSeriesDataset],
    num_samples: int | None = None,
    sampler: str | None = None,
    steps: int | None = None,
    eta: float | None = None,
    generator: torch.Generator | None = None,
) -> list[SSSDPrediction]:
    """One forecast per one-sample dataset in one batched model call, logged as
    ``predict_batch`` logs: what ``predict_batch`` does once it has the datasets of its frames
    (with a ``generator``, each forecast samples the noise ``predict`` would)."""
    preds = service._predict_many(
        list(datasets), num_samples, sampler, steps, eta, generator, max(len(datasets), 1)
    )
    service._log(preds, batch_size=len(preds))
    return preds
