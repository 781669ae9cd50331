"""Dynamic batching: concurrent forecast requests for one model and one sampling setting that
arrive within ``max_wait`` of each other become one ``predict_batch`` call.

Each key (model, sampling parameters) has a bounded queue and one worker task. The worker takes
the first waiting request, gathers more until ``max_batch`` or ``max_wait`` after the first,
and runs the batch through ``offload`` (a thread) under the model's lock. When a batch fails
(one bad frame), its requests are retried one by one, so each gets its own result or error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from typing import Generic, TypeVar

from forex_diffusion.errors import BusyError
from forex_diffusion.service.torch_thread import Offload

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass
class _Pending(Generic[In, Out]):
    item: In
    future: asyncio.Future[Out]


class DynamicBatcher(Generic[In, Out]):
    """Coalesces ``submit(key, item)`` calls into ``run_batch(key, items)`` calls.

    Args:
        run_batch: blocking; (key, items) → one output per item, in order.
        lock_of: the asyncio lock to hold while a key's batch runs (its model's lock).
        max_batch, max_wait_s, queue_size: batch bound, gathering window, queue bound per key.
        offload: runs a blocking call in a thread (the service's ``TorchThread``).
    """

    def __init__(
        self,
        run_batch: Callable[[Hashable, Sequence[In]], list[Out]],
        lock_of: Callable[[Hashable], asyncio.Lock],
        max_batch: int,
        max_wait_s: float,
        queue_size: int,
        offload: Offload,
    ) -> None:
        self.run_batch = run_batch
        self.offload = offload
        self.lock_of = lock_of
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.queue_size = queue_size
        self._queues: dict[Hashable, asyncio.Queue[_Pending[In, Out]]] = {}
        self._workers: dict[Hashable, asyncio.Task[None]] = {}
        self.batches = 0
        self.items = 0

    async def submit(self, key: Hashable, item: In) -> Out:
        """The output for ``item``, computed in a batch with other items of ``key``.

        Raises:
            BusyError: the key's queue is full.
        """
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = asyncio.Queue(self.queue_size)
            self._workers[key] = asyncio.create_task(self._work(key, queue))
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        try:
            queue.put_nowait(_Pending(item, future))
        except asyncio.QueueFull:
            raise BusyError(
                f"the forecast queue for this model is full ({self.queue_size} waiting); retry later"
            ) from None
        return await future

    async def _gather(self, queue: asyncio.Queue[_Pending[In, Out]]) -> list[_Pending[In, Out]]:
        batch = [await queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while len(batch) < self.max_batch:
            try:
                batch.append(queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), remaining))
            except TimeoutError:
                break
        return [p for p in batch if not p.future.done()]  # drop requests whose client left

    async def _work(self, key: Hashable, queue: asyncio.Queue[_Pending[In, Out]]) -> None:
        while True:
            batch = await self._gather(queue)
            if not batch:
                continue
            async with self.lock_of(key):
                try:
                    outs = await self.offload(partial(self.run_batch, key, [p.item for p in batch]))
                except Exception:
                    outs = None
                if outs is None or len(outs) != len(batch):
                    await self._one_by_one(key, batch)
                    continue
            self.batches += 1
            self.items += len(batch)
            for pending, out in zip(batch, outs, strict=True):
                if not pending.future.done():
                    pending.future.set_result(out)

    async def _one_by_one(self, key: Hashable, batch: list[_Pending[In, Out]]) -> None:
        for pending in batch:
            try:
                (out,) = await self.offload(partial(self.run_batch, key, [pending.item]))
            except Exception as exc:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            else:
                self.batches += 1
                self.items += 1
                if not pending.future.done():
                    pending.future.set_result(out)

    async def close(self) -> None:
        """Stop the workers; requests still queued fail with BusyError."""
        for task in self._workers.values():
            task.cancel()
        for task in self._workers.values():
            with suppress(asyncio.CancelledError):
                await task
        for queue in self._queues.values():
            while not queue.empty():
                pending = queue.get_nowait()
                if not pending.future.done():
                    pending.future.set_exception(BusyError("the service is shutting down"))
        self._workers.clear()
        self._queues.clear()
