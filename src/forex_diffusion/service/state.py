"""What one running service holds: settings, registry, store, models, batcher, live hub, jobs."""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import pandas as pd

from forex_diffusion.data.store import CandleStore, resolve_data_dir
from forex_diffusion.inference.sssd_inference import SSSDPrediction
from forex_diffusion.registry.repository import Registry, open_registry
from forex_diffusion.service.batching import DynamicBatcher
from forex_diffusion.service.forecasts import prediction_payload
from forex_diffusion.service.jobs import JobManager
from forex_diffusion.service.live import LiveHub, LiveUpdate
from forex_diffusion.service.pool import Loaded, ModelPool
from forex_diffusion.service.settings import ServiceSettings

# (asset, model, num_samples, sampler, steps, eta): requests with one key share a batch
BatchKey = tuple[str, str | None, int | None, str | None, int | None, float | None]


def live_payload(update: LiveUpdate, loaded: Loaded) -> dict[str, Any]:
    payload = prediction_payload(update.prediction, loaded.service, live=True)
    payload["reprimed"] = update.reprimed
    payload["bars_since_prime"] = update.bars_seen
    return payload


@dataclass
class ServiceState:
    settings: ServiceSettings
    registry: Registry
    store: CandleStore
    pool: ModelPool
    hub: LiveHub
    jobs: JobManager
    batcher: DynamicBatcher[pd.DataFrame, SSSDPrediction] = field(init=False)
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
        )

    @classmethod
    def build(cls, settings: ServiceSettings) -> ServiceState:
        config = settings.config
        registry = open_registry(config)
        store = CandleStore(resolve_data_dir(config, settings.data_dir))
        pool = ModelPool(config, registry, settings.device, settings.model_name)
        hub = LiveHub(pool.get, store, settings.live, live_payload)
        jobs = JobManager(
            settings.resolved_jobs_dir, settings.max_jobs, settings.log_tail_lines, registry
        )
        return cls(settings, registry, store, pool, hub, jobs)

    # ------------------------------------------------------------------ batching
    def _loaded(self, key: Hashable) -> Loaded:
        asset, model = cast(BatchKey, key)[:2]
        return self.pool.by_key(self.pool.key(asset, model))

    def _lock_of(self, key: Hashable) -> Any:
        return self._loaded(key).lock

    def _run_batch(self, key: Hashable, frames: Sequence[pd.DataFrame]) -> list[SSSDPrediction]:
        _, _, n, sampler, steps, eta = cast(BatchKey, key)
        service = self._loaded(key).service
        return service.predict_batch(
            list(frames), num_samples=n, sampler=sampler, steps=steps, eta=eta
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
        self.jobs.close()
        self.registry.close()
        self.store.close()
