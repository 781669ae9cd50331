"""Pydantic request and response models of the HTTP API (the OpenAPI schema is built from them)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from forex_diffusion.models.diffusion_scheduler import Sampler

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
JobStatus = Literal["queued", "running", "completed", "failed", "interrupted", "cancelled"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _in_range(value: datetime) -> datetime:
    """Times the candle store can hold (nanosecond timestamps)."""
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"time {value.isoformat()} is outside 1970-01-01 .. 2200-01-01")
    return value


def _date_in_range(value: date) -> date:
    if not EARLIEST.date() <= value < LATEST.date():
        raise ValueError(f"date {value.isoformat()} is outside 1970-01-01 .. 2200-01-01")
    return value


Time = Annotated[AwareDatetime, AfterValidator(_in_range)]
Day = Annotated[date, AfterValidator(_date_in_range)]


class Candle(_In):
    """One bar labelled by its open time (UTC offset required), like a row of the Python API."""

    timestamp: Time
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0


def candles_frame(candles: list[Candle]) -> pd.DataFrame:
    """Bars → the candle DataFrame of the Python API (validated later by the same checks)."""
    index = pd.DatetimeIndex(pd.to_datetime([c.timestamp for c in candles], utc=True))
    frame = pd.DataFrame(
        {
            "open": [c.open for c in candles],
            "high": [c.high for c in candles],
            "low": [c.low for c in candles],
            "close": [c.close for c in candles],
            "volume": [c.volume for c in candles],
        },
        index=index.rename("timestamp"),
    )
    return frame


class PredictRequest(_In):
    """A forecast from ``candles`` (1m or 5m, oldest first) or, without them, from the store.

    ``asof``: forecast as of the latest 5m close at or before it (default: the latest).
    ``quantiles``: extra quantile levels of the price change. ``seed``: sample with this
    seed (reproducible; such a request is not batched with others).
    """

    asset: str = Field(pattern=NAME)
    model: str | None = Field(None, pattern=NAME)
    candles: list[Candle] | None = None
    asof: Time | None = None
    num_samples: int | None = Field(None, ge=2)
    sampler: Sampler | None = None
    steps: int | None = Field(None, ge=1)
    eta: float | None = Field(None, ge=0.0, le=1.0)
    quantiles: list[Annotated[float, Field(gt=0.0, lt=1.0)]] = Field(
        default_factory=list, max_length=32
    )
    include_samples: bool = False
    seed: int | None = Field(None, ge=0, le=2**63 - 1)


class AdaptiveLevels(BaseModel):
    """The running adaptive conformal levels of a live forecast: ``levels[horizon][coverage]``
    is the α whose central (1 − α) model interval was issued as that coverage's interval;
    ``outcomes``: live forecasts scored so far; ``gamma``: the step size."""

    gamma: float
    outcomes: int
    levels: dict[str, dict[str, float]]


class Prediction(BaseModel):
    """``SSSDPrediction.to_dict()`` (maps keyed by horizon minutes as strings: price change in
    price units) plus direction, confidence, price levels and the requested quantiles."""

    model_config = ConfigDict(extra="allow")

    asset: str
    timestamp: str
    horizons: list[int]
    last_close: float
    model_name: str
    num_samples: int
    mean: dict[str, float]
    std: dict[str, float]
    q05: dict[str, float]
    q50: dict[str, float]
    q95: dict[str, float]
    direction: dict[str, Literal["up", "down", "neutral"]]
    confidence: dict[str, float]
    price_levels: dict[str, dict[str, float]]
    quantiles: dict[str, dict[str, float]]
    calibrated: bool
    live: bool = False
    adaptive_conformal: AdaptiveLevels | None = None
    """Live forecasts: the adaptive conformal levels they were issued with (None: off)."""


class BarsRequest(_In):
    """Newly closed bars of ``asset`` (1m or 5m, matching the store), oldest first."""

    asset: str = Field(pattern=NAME)
    candles: list[Candle] = Field(min_length=1)


class BarsResponse(BaseModel):
    asset: str
    rows_in: int
    rows_added: int
    already_stored: int
    conflicts: int
    total_bars: int
    last_bar: str
    forecasts: list[Prediction]
    live_error: str | None = None


class ErrorResponse(BaseModel):
    """Every 4xx: the error class name and a message naming the problem and the place."""

    error: str
    message: str
    details: list[dict[str, Any]] | None = None


class LoadedModel(BaseModel):
    asset: str
    model_name: str
    device: str
    checkpoint: str | None


class AssetStatus(BaseModel):
    asset: str
    last_bar: str | None
    last_decision: str | None
    subscribers: int
    bars_since_prime: int


class StatusResponse(BaseModel):
    status: Literal["ok"]
    version: str
    versions: dict[str, str]
    device: str
    uptime_s: float
    models: list[LoadedModel]
    assets: list[AssetStatus]
    jobs: dict[str, int]
    batching: bool


class ModelsResponse(BaseModel):
    models: list[dict[str, Any]]


class TrainJobRequest(_In):
    """Train ``asset``'s model in a worker process; ``overrides`` are dotted config overrides
    (``paths.*`` cannot be changed over HTTP); ``resume`` continues from ``last.ckpt``."""

    asset: str = Field(pattern=NAME)
    model: str | None = Field(None, pattern=NAME)
    overrides: list[str] = Field(default_factory=list, max_length=64)
    resume: bool = False


class EvaluateJobRequest(_In):
    """Walk-forward evaluation of ``asset`` on [start, end] in a worker process."""

    asset: str = Field(pattern=NAME)
    start: Day
    end: Day
    model: str | None = Field(None, pattern=NAME)
    baselines_only: bool = False
    stride: int | None = Field(None, ge=1)
    num_samples: int | None = Field(None, ge=2)
    overrides: list[str] = Field(default_factory=list, max_length=64)


class JobProgress(BaseModel):
    fraction: float | None = None
    epoch: int | None = None
    epochs: int | None = None
    done: int | None = None
    total: int | None = None
    loss: dict[str, float] = Field(default_factory=dict)


class JobResponse(BaseModel):
    id: str
    kind: Literal["train", "evaluate", "ensemble"]
    asset: str
    status: JobStatus
    created_at: str
    started_at: str | None
    finished_at: str | None
    progress: JobProgress
    eta_s: float | None
    log_tail: list[str]
    result: dict[str, Any] | None
    error: str | None


class JobList(BaseModel):
    jobs: list[JobResponse]
