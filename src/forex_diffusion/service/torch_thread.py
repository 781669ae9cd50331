"""The one thread on which the service runs PyTorch: model loads, feature tensors, model calls.

PyTorch's CPU operators split their loops over an OpenMP team that belongs to the calling
thread, and every thread that calls them gets a team of its own. Once the process holds more
OpenMP threads than the machine has cores, GNU OpenMP stops spinning between parallel regions
and puts idle team threads to sleep, so every small operator (a forecast's sampling is a few
hundred of them on tensors of a few thousand values) pays a wake-up. Work handed from a pool
of worker threads therefore ran at a fraction of the speed of the same work on one thread
(``benchmarks/bench_service.py`` measures the live update; the closing note of the change has
the figures). The service keeps one team by running everything that touches tensors through
one ``TorchThread``; blocking work without tensors (store reads and writes) still goes to
anyio's worker threads.

Calls run one at a time in submission order; the models' locks still say which calls may
interleave (a batch and a live update of one model never do).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

T = TypeVar("T")


class Offload(Protocol):
    """How the service hands blocking work to a thread: ``await offload(fn)`` → ``fn()``
    (``TorchThread.run``)."""

    def __call__(self, fn: Callable[[], T], /) -> Awaitable[T]: ...


class TorchThread:
    """A single worker thread; ``await run(fn)`` runs the blocking ``fn()`` there."""

    def __init__(self, name: str = "forex-diffusion-torch") -> None:
        self.name = name  # the thread's name starts with it
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` on the thread; its exception is raised here. Cancelling the caller does not
        stop a call that has started (it finishes, as with anyio's worker threads)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def close(self) -> None:
        """No new calls; queued ones are dropped, a running one finishes in the background."""
        self._executor.shutdown(wait=False, cancel_futures=True)
