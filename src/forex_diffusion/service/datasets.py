"""Prepared features of store-based forecasts, shared by the requests that need the same ones.

A forecast from the store as of ``end`` (``asof``, or the latest bar's close) is computed on the
one-sample dataset (standardized windows, target scales, last close) that
``SSSDInferenceService.build_features`` makes of the stored candles in [end - history_span, end)
closed by ``asof``. ``DatasetCache`` keeps the latest of these datasets keyed on what they depend
on: the model, the asset, ``end``, ``asof`` and the store's version of the asset
(``CandleStore.version``: it changes with every write of the asset's bars, so a dataset is never
reused after bars were appended, replaced or compacted). Concurrent requests for a dataset being
built wait for that one build. A cached dataset is the dataset the request would have built, so
the forecast is the same as without the cache (same generator, same samples).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Hashable

from forex_diffusion.dataset.windows import SSSDTimeSeriesDataset
from forex_diffusion.service.torch_thread import Offload


class DatasetCache:
    """Least-recently-used datasets, at most ``size``, built through ``offload`` (the
    service's ``TorchThread``) on a miss."""

    def __init__(self, size: int, offload: Offload) -> None:
        self.size = size
        self.offload = offload
        self._done: OrderedDict[Hashable, SSSDTimeSeriesDataset] = OrderedDict()
        self._building: dict[Hashable, asyncio.Future[SSSDTimeSeriesDataset]] = {}
        self.hits = 0
        self.misses = 0

    async def get(
        self, key: Hashable, build: Callable[[], SSSDTimeSeriesDataset]
    ) -> SSSDTimeSeriesDataset:
        """The dataset of ``key``; ``build`` (blocking) makes it when it is neither cached nor
        being built. A failed build is not cached: its error goes to every waiting request."""
        if key in self._done:
            self._done.move_to_end(key)
            self.hits += 1
            return self._done[key]
        pending = self._building.get(key)
        if pending is not None:
            self.hits += 1
            return await asyncio.shield(pending)
        self.misses += 1
        future: asyncio.Future[SSSDTimeSeriesDataset] = asyncio.get_running_loop().create_future()
        self._building[key] = future
        try:
            dataset = await self.offload(build)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        else:
            future.set_result(dataset)
            self._done[key] = dataset
            while len(self._done) > self.size:
                self._done.popitem(last=False)
            return dataset
        finally:
            del self._building[key]
