"""Live forecasts: on every new 5m bar close, advance the streaming encoder and push a forecast.

Per asset, a ``LiveAsset`` keeps an ``EncoderStream`` (the S4D recurrent state of every
timeframe stack) and ``LiveFeatureWindows`` (the incremental feature state of every
timeframe). Priming at decision time t builds exactly the windows ``predict(asof=t)`` builds
(candles of the ``history_span`` before t), runs the stacks once and warms the feature state on
those candles (``LiveFeatureWindows.warm``: to rounding, the state of features computed from
the same anchor, the prime's window start; a re-prime on schedule takes over the timeframes
whose state has forgotten where it started). At each later 5m close t', only the candles since
the previous decision are read from the store (one read per POST) and pushed into the feature
state, which returns the rows of the bars that closed (the 5m bar, plus a 15m/1h/4h bar when
one closed); each row is fed to the stream. A live update then costs one feature update and one
recurrent step per new bar, and the sampling, instead of a feature rebuild over the history
and a pass over every window. Each live forecast is one call on the service's ``TorchThread``
under the model's lock (``LiveHub._next``: the store read of the pending decisions on the
first, then the feature work ``LiveAsset.plan`` and the model work ``LiveAsset.forecast``):
the thread runs the service's tensor work one call at a time anyway, so holding the lock over
the feature work delays no other forecast, and one hand-off per forecast is the cheapest.

What the stream computes, exactly: the encoder over each window GROWN by the new bars (the
window that started at the prime, extended to t'), on features whose recursive smoothers
(EMA, Wilder) are seeded at the fixed anchor. The batch forecast at t' instead encodes a
window of fixed length ending at t', on features seeded ``history_span`` before t'. The two
agree at every prime and drift apart in between, for two reasons that no per-bar update can
remove: (1) the S4D kernel is longer than the window (its slowest modes decay over more bars
than a window holds), so bars that left the fixed window still contribute to the recurrent
state; subtracting them would need each layer's inputs over the old window, and after the
first block those inputs are nonlinear functions of the window start; (2) smoother seeds at a
different start give slightly different feature values. Re-priming every
``Live.reprime_every`` bars bounds the drift; ``reprime_every=1`` makes every live forecast
the batch forecast.

The forecast for decision time t samples with a generator seeded from (``Live.seed``, t), so
it is reproducible and equals the batch forecast made with the same generator.

With ``inference.adaptive_conformal.live`` (the default) the served forecasts adapt to the
outcomes of the earlier live forecasts: at each 5m close t the forecasts made at t − h are
scored on the close at t (their outcome log(close_t / close_{t−h})), which moves the running
levels, and the new forecast is issued under them (``calibration.conformal.OnlineConformal``,
the function the evaluation's ``adaptive`` row replays). A forecast whose outcome bar was never
a live decision (a gap, a skipped catch-up) is forgotten without an update. The levels live in
the service process and start at the nominal ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch
from loguru import logger

from forex_diffusion.calibration.conformal import AdaptiveConformal, OnlineConformal
from forex_diffusion.config.sssd_config import AdaptiveConformalConfig
from forex_diffusion.data.resample import closed_bar_closes
from forex_diffusion.data.store import CandleStore
from forex_diffusion.dataset.windows import SSSDTimeSeriesDataset
from forex_diffusion.errors import DataError, ForexDiffusionError, NotFoundError
from forex_diffusion.inference.live_features import LiveFeatureWindows
from forex_diffusion.inference.sssd_inference import SSSDPrediction
from forex_diffusion.models.sssd_encoder import EncoderStream
from forex_diffusion.service.pool import Loaded
from forex_diffusion.service.settings import Live
from forex_diffusion.service.torch_thread import Offload
from forex_diffusion.timeframe_units import NS_PER_MIN

FIVE_MIN = pd.Timedelta(minutes=5)


def live_seed(seed: int, decision_time: pd.Timestamp) -> int:
    """The sampling seed of the live forecast at ``decision_time`` (deterministic)."""
    minutes = int(decision_time.value // 60_000_000_000)
    return (seed * 1_000_003 + minutes) % (2**63 - 1)


def live_generator(seed: int, decision_time: pd.Timestamp) -> torch.Generator:
    return torch.Generator().manual_seed(live_seed(seed, decision_time))


@dataclass(frozen=True)
class _Plan:
    """The feature work of one live decision ``t``: its dataset (scales, last close), the
    feature state after it, and either the windows to prime the stream on ({tf: (1, L, F)})
    or the rows (tf, (F,)) of the bars closed since the last decision, in order."""

    t: pd.Timestamp
    dataset: SSSDTimeSeriesDataset
    windows: LiveFeatureWindows
    prime_features: dict[str, torch.Tensor] | None
    closed: list[tuple[str, np.ndarray]]


@dataclass(frozen=True)
class LiveUpdate:
    """One live forecast: the prediction, whether the stream was re-primed for it, the bars
    each timeframe stream has consumed since its last prime, and the adaptive conformal levels
    it was issued with (None when off)."""

    prediction: SSSDPrediction
    reprimed: bool
    bars_seen: dict[str, int]
    adaptive: dict[str, Any] | None = None


class LiveAsset:
    """Streaming encoder state of one asset's model over its stored candles.

    Blocking methods (``pending_decisions``, ``advance``) run on the service's torch thread
    under the model's lock; the subscriber queues belong to the event loop.
    """

    def __init__(
        self,
        asset: str,
        loaded: Loaded,
        store: CandleStore,
        settings: Live,
        adaptive: AdaptiveConformalConfig | None = None,
    ) -> None:
        self.asset = asset
        self.loaded = loaded
        self.store = store
        self.settings = settings
        self.stream: EncoderStream | None = None
        self.windows: LiveFeatureWindows | None = None
        self.fresh: pd.DataFrame | None = None  # candles since the last decision (this round)
        self.since_prime = 0
        self.decision: pd.Timestamp | None = None
        self.latest: dict[str, Any] | None = None
        self.subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self.lock = asyncio.Lock()  # one advance of this asset at a time
        self.conformal: OnlineConformal | None = None
        if adaptive is not None and adaptive.live:
            self.conformal = OnlineConformal(
                AdaptiveConformal(tuple(adaptive.coverages), adaptive.gamma),
                adaptive.by_session,
                by_phase=adaptive.by_phase,
            )
        self.closes: dict[int, float] = {}  # decision time (ns) → close, for the outcomes

    # ------------------------------------------------------------------ features
    def _prime_features(self, t: pd.Timestamp, previous: LiveFeatureWindows | None) -> _Plan:
        """The windows of decision time ``t`` (as ``predict(asof=t)``) and the feature state
        warmed on their candles (taking over what it can from the ``previous`` state, pushed
        up to ``t``; see ``LiveFeatureWindows.warm``)."""
        service = self.loaded.service
        candles = self.store.load(self.asset, start=t - service.history_span, end=t)
        if previous is not None and previous.last_candle_ns is not None:
            try:
                previous.push(candles[candles.index.asi8 > previous.last_candle_ns])
            except ValueError:
                previous = None
            if previous is not None and previous.last_candle_ns != candles.index.asi8[-1]:
                previous = None
        base = self.store.base_timeframe(self.asset)
        dataset = SSSDTimeSeriesDataset.from_candles(
            candles,
            service.config_for_base(base),
            service.standardizer,
            decision_times=[t],
            require_targets=False,
        )
        windows = service.live_windows(base)
        windows.warm(
            candles,
            {tf: (b.values, b.open_ns) for tf, b in dataset.source.blocks.items()},
            previous,
        )
        return _Plan(t, dataset, windows, dataset.get_batch([0])[0], [])

    def _step_features(self, t: pd.Timestamp) -> _Plan | None:
        """Push the candles stored since the last decision up to ``t``: the rows of the bars
        they closed, for the stream; None when the stream cannot be continued to ``t`` (no new
        candle, or the 5m bar ending at ``t`` did not close), so the caller re-primes."""
        windows = self.windows
        assert windows is not None and windows.last_candle_ns is not None
        start = pd.Timestamp(windows.last_candle_ns + windows.base_ns, tz="UTC")
        if start >= t:
            return None
        try:
            if self.fresh is not None:  # the candles pending_decisions read for this round
                open_ns = self.fresh.index.as_unit("ns").asi8  # strictly increasing
                lo, hi = np.searchsorted(open_ns, [start.value, t.value])
                candles = self.fresh.iloc[lo:hi]  # open times in [start, t)
            else:
                candles = self.store.load(self.asset, start=start, end=t)
            closed = windows.push(candles)
        except (DataError, ValueError):
            return None
        if not windows.closes or windows.closes[-1][0] != t.value:
            return None
        return _Plan(t, windows.dataset(t), windows, None, closed)

    def plan(self, t: pd.Timestamp) -> _Plan:
        """The feature work of the live forecast at the 5m close ``t`` (after the previous
        decision): a step when the stream can continue, else a prime (no model needed);
        ``forecast`` does the rest."""
        intact = (
            self.stream is not None
            and self.windows is not None
            and self.decision is not None
            and t > self.decision
        )
        can_step = intact and self.since_prime + 1 < self.settings.reprime_every
        plan = self._step_features(t) if can_step else None
        if plan is None:
            # a re-prime on schedule continues the feature state; any other starts afresh
            previous = self.windows if intact and not can_step else None
            self.stream = self.windows = None  # not usable if priming fails half-way
            plan = self._prime_features(t, previous)
        return plan

    # ------------------------------------------------------------------ forecasting
    def forecast(self, plan: _Plan) -> LiveUpdate:
        """The model work of ``plan``: prime the stream on the windows, or feed it the new
        bars; then sample the forecast."""
        service = self.loaded.service
        device = service.device
        reprimed = plan.prime_features is not None
        stream = None if reprimed else self.stream
        self.stream = None  # not usable if an update fails half-way
        with torch.inference_mode():
            if plan.prime_features is not None:
                stream = service.model.start_stream(
                    {tf: x.to(device) for tf, x in plan.prime_features.items()}
                )
            assert stream is not None
            context = stream.advance(
                [(tf, torch.from_numpy(row)[None].to(device)) for tf, row in plan.closed]
            )
        self.stream, self.windows = stream, plan.windows
        self.since_prime = 0 if reprimed else self.since_prime + 1
        adapt, levels = None, None
        if self.conformal is not None:
            levels = self._resolve_outcomes(plan.t.value, float(plan.dataset.last_close[0]))
            adapt = self._adapter(plan.t.value)
        pred = service.predict_from_context(
            context,
            plan.dataset,
            num_samples=self.settings.num_samples,
            generator=live_generator(self.settings.seed, plan.t),
            adapt=adapt,
        )[0]
        self.decision = plan.t
        return LiveUpdate(pred, reprimed, dict(stream.bars_seen), levels)

    # ------------------------------------------------------------------ adaptive conformal
    def _resolve_outcomes(self, t_ns: int, close: float) -> dict[str, Any]:
        """Record the close at the decision ``t_ns`` and score every live forecast whose
        horizon ends by then; returns the levels the forecast at ``t_ns`` is issued with."""
        conformal = self.conformal
        assert conformal is not None
        self.closes[t_ns] = close
        horizons = self.loaded.service.horizons
        for t_j, h in sorted(conformal.issued):
            end = t_j + h * NS_PER_MIN
            if end <= t_ns:
                c0, c1 = self.closes.get(t_j), self.closes.get(end)
                y = float(np.log(c1 / c0)) if c0 and c1 else float("nan")
                conformal.resolve(t_j, h, y)
        oldest = t_ns - max(horizons) * NS_PER_MIN
        self.closes = {t: c for t, c in self.closes.items() if t >= oldest}
        cov = conformal.aci.coverages
        return {
            "gamma": conformal.aci.gamma,
            "outcomes": conformal.outcomes,
            "levels": {
                str(h): {
                    f"{c:g}": float(a) for c, a in zip(cov, conformal.levels(t_ns, h), strict=True)
                }
                for h in horizons
            },
        }

    def _adapter(self, t_ns: int) -> Callable[[np.ndarray], np.ndarray]:
        """Log-return samples (1, H, S) of the forecast at ``t_ns`` → issued under the levels."""
        conformal = self.conformal
        assert conformal is not None
        horizons = self.loaded.service.horizons

        def adapt(log_returns: np.ndarray) -> np.ndarray:
            return conformal.issue(t_ns, horizons, log_returns[0])[None]

        return adapt

    def advance(self, t: pd.Timestamp) -> LiveUpdate:
        """The live forecast at the 5m close ``t``: ``plan`` then ``forecast`` (one thread)."""
        return self.forecast(self.plan(t))

    def pending_decisions(self, last_bar: pd.Timestamp, max_catchup: int) -> list[pd.Timestamp]:
        """5m closes after the last decision up to the last complete stored 5m bar (only the
        latest when no decision was made yet or more than ``max_catchup`` are pending)."""
        start = self.decision if self.decision is not None else last_bar - pd.Timedelta(days=1)
        self.fresh = None
        try:
            candles = self.store.load(self.asset, start=start)
        except DataError:
            return []
        # the closes of the 5m bars of store.load(start=start, timeframe="5m"), from the
        # candles kept for step()
        ends = closed_bar_closes(
            candles.index.as_unit("ns").asi8, "5m", self.store.base_timeframe(self.asset)
        )
        ends = ends[ends >= (start + FIVE_MIN).value]  # bars opening at or after start
        if self.decision is not None:
            ends = ends[ends > self.decision.value]
        self.fresh = candles
        if self.decision is None or len(ends) > max_catchup:
            ends = ends[-1:]
        return [pd.Timestamp(int(t), tz="UTC") for t in ends]

    # ------------------------------------------------------------------ subscribers
    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self.settings.queue)
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self.subscribers.discard(queue)

    def publish(self, payload: dict[str, Any]) -> None:
        """Hand ``payload`` to every subscriber (a full queue loses its oldest event)."""
        self.latest = payload
        for queue in list(self.subscribers):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(payload)


class LiveHub:
    """The live assets of the service (created on first use: a stream, a bar, or startup)."""

    def __init__(
        self,
        get_loaded: Callable[[str], Any],
        store: CandleStore,
        settings: Live,
        to_payload: Callable[[LiveUpdate, Loaded], dict[str, Any]],
        offload: Offload,
        max_catchup: int = 288,
        adaptive: AdaptiveConformalConfig | None = None,
    ) -> None:
        self.get_loaded = get_loaded
        self.store = store
        self.settings = settings
        self.adaptive = adaptive
        self.to_payload = to_payload
        self.offload = offload  # the tensor work: features and model (a TorchThread)
        self.max_catchup = max_catchup
        self.assets: dict[str, LiveAsset] = {}

    async def asset(self, asset: str) -> LiveAsset:
        """The live state of ``asset`` (loading its model). Raises NotFoundError."""
        name = asset.upper()
        if name not in self.assets:
            loaded = await self.get_loaded(name)
            self.assets.setdefault(
                name, LiveAsset(name, loaded, self.store, self.settings, self.adaptive)
            )
        return self.assets[name]

    async def on_new_bars(
        self, asset: str, last_bar: pd.Timestamp
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Advance ``asset`` through every 5m close not yet forecast: the payloads published,
        and why the live state stopped early (e.g. too little history), if it did. An asset
        without a model has no live state (no forecasts, no error)."""
        try:
            live = await self.asset(asset)
        except NotFoundError:
            return [], None
        out: list[dict[str, Any]] = []
        pending: list[pd.Timestamp] | None = None
        async with live.lock:
            while pending is None or pending:
                async with live.loaded.lock:  # held over the whole call (see the module)
                    pending, t, result = await self.offload(
                        partial(self._next, live, last_bar, pending)
                    )
                if isinstance(result, ForexDiffusionError):
                    live.stream = live.windows = None  # start afresh with the next bar
                    logger.warning(f"live {asset} at {t}: {result}")
                    return out, f"{type(result).__name__}: {result}"
                if result is None:
                    break
                payload = self.to_payload(result, live.loaded)
                live.publish(payload)
                out.append(payload)
        return out, None

    def _next(
        self, live: LiveAsset, last_bar: pd.Timestamp, pending: list[pd.Timestamp] | None
    ) -> tuple[list[pd.Timestamp], pd.Timestamp | None, LiveUpdate | ForexDiffusionError | None]:
        """The next live forecast of ``live``, in one call on the torch thread (one hand-off
        per forecast): the decision times still ``pending`` (read from the store on the first
        call, None), the decision time forecast and its update (or the error that stopped it;
        None when nothing is pending)."""
        if pending is None:
            pending = live.pending_decisions(last_bar, self.max_catchup)
        if not pending:
            return [], None, None
        t, *rest = pending
        try:
            return rest, t, live.advance(t)
        except ForexDiffusionError as exc:
            return rest, t, exc
