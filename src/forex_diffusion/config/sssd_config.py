"""Strict, typed configuration: YAML defaults <- asset config <- dotted overrides.

Every section is a frozen pydantic model that forbids unknown keys. ``load_sssd_config``
reports all problems at once, each with its full dotted path; unknown keys come with the
nearest valid key as a suggestion.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from forex_diffusion.config.field_docs import attribute_docstrings, json_schema_with_field_docs
from forex_diffusion.config.presets import DEFAULT_CONFIG_PATH, PRESETS_DIR
from forex_diffusion.errors import ConfigError
from forex_diffusion.timeframes import ONE_DAY, UtcRange, timeframe_minutes, to_utc


class _Section(BaseModel):
    """A config section; the docstring under each field is its description in the JSON schema
    (``config schema``, read by ``field_docs`` when asked for), which a form can show beside the
    field."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def default_pip_size(symbol: str) -> float:
    """Conventional pip size: 0.01 for JPY crosses, 0.1 for gold, 0.0001 otherwise."""
    s = symbol.upper()
    if s.endswith("JPY"):
        return 0.01
    if s.startswith("XAU"):
        return 0.1
    return 0.0001


class SanityBounds(_Section):
    """Plausibility bounds of an asset's bars; an imported bar outside them is a bad row.

    ``max_future_days``: latest open time accepted, in days after now; ``min_price`` /
    ``max_price``: accepted price range; ``max_jump``: largest relative change accepted between
    consecutive closes, and between a bar's low and high (0.5 = 50 %).
    """

    max_future_days: float = Field(default=1.0, ge=0)
    """Latest bar open time accepted, in days after now."""
    min_price: float = Field(default=1e-6, gt=0)
    """Lowest accepted price."""
    max_price: float = Field(default=1e6, gt=0)
    """Highest accepted price."""
    max_jump: float = Field(default=0.5, gt=0)
    """Largest relative change accepted between consecutive closes, and between a bar's low
    and high (0.5 = 50 %)."""

    @model_validator(mode="after")
    def _ordered(self) -> SanityBounds:
        if self.min_price >= self.max_price:
            raise ValueError("min_price must be smaller than max_price")
        return self


class AssetConfig(_Section):
    symbol: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_]+$")
    """Asset whose candles are read from the store, e.g. EURUSD."""
    pip_size: float = Field(gt=0)
    """Price units per pip (0.0001 for most pairs, 0.01 for JPY pairs, 0.1 for XAUUSD)."""
    base_timeframe: Literal["1m", "5m"] = "1m"
    """Timeframe of the stored candles: 1m or 5m."""
    sanity: SanityBounds = SanityBounds()
    """Plausibility bounds a candle must meet to be imported or used."""


class PathsConfig(_Section):
    data_dir: str = "data"
    """Candle store root (env FOREX_DIFFUSION_DATA_DIR and --data-dir override it)."""
    artifacts_dir: str = "artifacts"
    """Artifacts root: the SQLite registry, checkpoints and logs; checkpoint paths in the
    registry are stored relative to it (env FOREX_DIFFUSION_ARTIFACTS_DIR and --artifacts-dir
    override it).
    """
    checkpoint_dir: str = "artifacts/sssd/checkpoints"
    """Folder of the model checkpoints (<asset>/<model>/*.ckpt)."""
    log_dir: str = "artifacts/sssd/logs"
    """Folder of the training logs."""
    reports_dir: str = "reports"
    """Folder of the evaluation reports."""
    db_url: str | None = None
    """SQLAlchemy URL of the registry; null = SQLite file <artifacts_dir>/registry.db (env
    FOREX_DIFFUSION_DB_URL and --db-url override it).
    """


class DateRange(_Section):
    start: date
    """First day of the range (UTC, inclusive)."""
    end: date
    """Last day of the range (UTC, inclusive)."""

    @model_validator(mode="after")
    def _ordered(self) -> DateRange:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self

    def utc_range(self, name: str) -> UtcRange:
        """The inclusive dates as a half-open UTC interval [start 00:00, day after end 00:00)."""
        return UtcRange(
            name, to_utc(pd.Timestamp(self.start)), to_utc(pd.Timestamp(self.end)) + ONE_DAY
        )


class SplitsConfig(_Section):
    train: DateRange
    """Training range (dates)."""
    val: DateRange
    """Validation range (dates), after train."""
    test: DateRange
    """Test range (dates), after val; never seen in training."""

    @model_validator(mode="after")
    def _disjoint(self) -> SplitsConfig:
        if not self.train.end < self.val.start:
            raise ValueError("val.start must come after train.end")
        if not self.val.end < self.test.start:
            raise ValueError("test.start must come after val.end")
        return self


class DataConfig(_Section):
    timeframes: tuple[str, ...] = ("5m", "15m", "1h", "4h")
    """Timeframes of the encoder inputs, shortest first; the first must be 5m."""
    lookbacks: dict[str, Annotated[int, Field(ge=1)]]
    """Bars of history per timeframe fed to the encoders, e.g. {5m: 500, 1h: 41}."""
    horizons: tuple[int, ...] = (5, 15, 60, 240)
    """Forecast horizons in minutes (distinct increasing multiples of 5)."""
    splits: SplitsConfig
    """Train, validation and test date ranges."""
    embargo_minutes: int | None = Field(default=None, ge=0)
    """Minutes left out between splits; never less than the longest horizon plus the longest
    lookback (null = that minimum).
    """
    decision_stride: int = Field(default=1, ge=1)
    """Decision times are 5m closes on the stride x 5 min clock grid (6 = every :00 and :30)."""
    target_scale: Literal["ewma", "seasonal_ewma"] = "ewma"
    """What each horizon's target log return is divided by: ewma (EWMA σ of 5m returns,
    λ = features.vol_ewma_lambda, × sqrt(h/5)) or seasonal_ewma (the seasonal-EWMA σ forecast
    for that horizon, the evaluation's ewma_seasonal baseline: evaluation.ewma_lambdas,
    ewma_objective, seasonal_slot_minutes and seasonal_prior_count, fitted on the training
    range only and stored in the checkpoint).
    """
    num_workers: int = Field(default=0, ge=0)
    """DataLoader worker processes (0 = load in the main process)."""

    @field_validator("timeframes")
    @classmethod
    def _valid_timeframes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one timeframe is required")
        minutes = [timeframe_minutes(tf) for tf in value]
        if minutes != sorted(set(minutes)):
            raise ValueError("timeframes must be distinct and ordered from shortest to longest")
        if minutes[0] != 5:
            raise ValueError("the first timeframe must be 5m (decision times are 5m bar closes)")
        return value

    @field_validator("horizons")
    @classmethod
    def _valid_horizons(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(h <= 0 or h % 5 for h in value) or list(value) != sorted(set(value)):
            raise ValueError("horizons must be distinct increasing positive multiples of 5 minutes")
        return value

    @model_validator(mode="after")
    def _lookbacks_match(self) -> DataConfig:
        if set(self.lookbacks) != set(self.timeframes):
            raise ValueError(
                f"lookbacks must have one entry per timeframe {list(self.timeframes)}, "
                f"got {sorted(self.lookbacks)}"
            )
        return self

    @property
    def effective_embargo_minutes(self) -> int:
        """Embargo between splits: the configured value, at least longest horizon + longest lookback."""
        longest_lookback = max(timeframe_minutes(tf) * n for tf, n in self.lookbacks.items())
        floor = max(self.horizons) + longest_lookback
        return max(self.embargo_minutes or 0, floor)


FeatureName = Literal[
    "returns",
    "range_body",
    "realized_vol",
    "atr",
    "rsi",
    "bollinger",
    "macd",
    "ema_distance",
    "donchian",
    "calendar",
    "sessions",
    "gap",
    "volume",
]


class FeaturesConfig(_Section):
    names: tuple[FeatureName, ...] = Field(min_length=1)
    """Feature groups computed per timeframe (returns, range_body, realized_vol, atr, rsi,
    bollinger, macd, ema_distance, donchian, calendar, sessions, gap, volume).
    """
    rv_windows: tuple[Annotated[int, Field(ge=2)], ...] = Field(default=(6, 12, 48), min_length=1)
    """Windows (bars) of the realised-volatility features."""
    atr_window: int = Field(default=14, ge=2)
    """Window (bars) of the average true range."""
    rsi_window: int = Field(default=14, ge=2)
    """Window (bars) of the relative strength index."""
    bollinger_window: int = Field(default=20, ge=2)
    """Window (bars) of the Bollinger bands."""
    bollinger_k: float = Field(default=2.0, gt=0)
    """Width of the Bollinger bands in standard deviations."""
    macd_fast: int = Field(default=12, ge=1)
    """Fast EMA span (bars) of the MACD."""
    macd_slow: int = Field(default=26, ge=2)
    """Slow EMA span (bars) of the MACD."""
    macd_signal: int = Field(default=9, ge=1)
    """Signal EMA span (bars) of the MACD."""
    ema_windows: tuple[Annotated[int, Field(ge=2)], ...] = Field(default=(12, 48), min_length=1)
    """EMA spans (bars) of the distance-to-EMA features."""
    donchian_window: int = Field(default=20, ge=2)
    """Window (bars) of the Donchian channel."""
    volume_window: int = Field(default=20, ge=1)
    """Bars averaged by the volume feature (used only with 'volume')."""
    vol_ewma_lambda: float = Field(default=0.94, gt=0, lt=1)
    """EWMA decay of 5m returns for the causal target scale (data.target_scale: ewma)."""
    realized: bool = False
    """Add to the 5m timeframe's features the HAR realised volatilities (realised variance of
    the base candles inside each 5m bar, Parkinson and Garman-Klass range variances, each
    averaged over the last hour, day and week of 5m bars; a week of warm-up)."""
    time_of_week: bool = False
    """Add to the 5m timeframe's features the hour-of-week volatility scale log s(k) of the
    bar's own and of the next bar's (weekday, slot) (the seasonal-EWMA factors fitted on the
    training range; the week phase itself is the calendar family's dow_sin/dow_cos)."""

    @model_validator(mode="after")
    def _macd_order(self) -> FeaturesConfig:
        if self.macd_fast >= self.macd_slow:
            raise ValueError("macd_fast must be smaller than macd_slow")
        if len(set(self.names)) != len(self.names):
            raise ValueError("feature names must not repeat")
        if len(set(self.rv_windows)) != len(self.rv_windows) or len(set(self.ema_windows)) != len(
            self.ema_windows
        ):
            raise ValueError(
                "rv_windows and ema_windows must not repeat (column names would clash)"
            )
        return self


class EncoderConfig(_Section):
    d_model: int = Field(default=128, ge=1)
    """Width of each S4D encoder."""
    n_layers: int = Field(default=4, ge=1)
    """S4D layers per encoder."""
    state_dim: int = Field(default=64, ge=2, multiple_of=2)
    """State size of the diagonal SSM (even)."""
    init: Literal["s4d_lin", "s4d_inv", "s4d_legs"] = "s4d_lin"
    """Initialisation of the diagonal state matrix: s4d_lin, s4d_inv or s4d_legs."""
    dt_min: float = Field(default=1e-3, gt=0)
    """Smallest initial SSM time step."""
    dt_max: float = Field(default=1e-1, gt=0)
    """Largest initial SSM time step."""
    dropout: float = Field(default=0.1, ge=0, lt=1)
    """Dropout rate inside the encoders."""
    cross_attention: bool = True
    """Fuse the timeframes with cross-attention (false = concatenation)."""
    attention_heads: int = Field(default=4, ge=1)
    """Heads of the cross-attention (must divide d_model)."""
    context_dim: int = Field(default=512, ge=1)
    """Size of the context vector handed to the diffusion head."""

    @model_validator(mode="after")
    def _checks(self) -> EncoderConfig:
        if self.dt_min >= self.dt_max:
            raise ValueError("dt_min must be smaller than dt_max")
        if self.d_model % self.attention_heads:
            raise ValueError("d_model must be divisible by attention_heads")
        return self


class HeadConfig(_Section):
    hidden_dim: int = Field(default=48, ge=1)
    """Width of the residual FiLM-MLP of the diffusion head."""
    n_blocks: int = Field(default=3, ge=1)
    """Residual blocks of the diffusion head."""
    timestep_embedding_dim: int = Field(default=128, ge=2, multiple_of=2)
    """Size of the diffusion timestep embedding (even)."""
    dropout: float = Field(default=0.0, ge=0, lt=1)
    """Dropout rate inside the head."""


class DiffusionConfig(_Section):
    train_steps: int = Field(default=1000, ge=2)
    """Diffusion steps of the training noise schedule."""
    cosine_s: float = Field(default=0.008, gt=0)
    """Offset s of the cosine noise schedule."""
    max_beta: float = Field(default=0.999, gt=0, le=0.9999)
    """Largest beta of the noise schedule."""
    prediction: Literal["epsilon", "v"] = "v"
    """What the head predicts: v or epsilon."""


class LossConfig(_Section):
    horizon_weights: tuple[float, ...] = (0.4, 0.3, 0.2, 0.1)
    """Loss weight per horizon (one per data.horizons entry)."""
    noise_draws: int = Field(default=4, ge=1)
    """(timestep, noise) draws per target per encoder pass."""
    consistency_weight: float = Field(default=0.0, ge=0)
    """Weight of the alpha-bar weighted x0-reconstruction term (0 = off)."""

    @field_validator("horizon_weights")
    @classmethod
    def _positive(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(w < 0 for w in value) or sum(value) <= 0:
            raise ValueError("horizon weights must be non-negative with a positive sum")
        return value


class ModelConfig(_Section):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    """Model name in the registry and the checkpoint folder."""
    encoder: EncoderConfig
    """The S4D encoders (one per timeframe)."""
    horizon_embedding_dim: int = Field(default=128, ge=1)
    """Size of the horizon embedding."""
    head: HeadConfig
    """The diffusion head."""
    diffusion: DiffusionConfig
    """The noise schedule."""
    loss: LossConfig
    """The training loss."""
    assets: list[str] = Field(default_factory=list)
    """Assets of a global model (one model trained on several assets, each with its own
    standardizer and an embedding); empty for a per-asset model."""
    asset_dropout: float = Field(default=0.1, ge=0, lt=1)
    """Global models: share of training samples whose asset is replaced by the unseen-asset
    embedding, which then serves assets the model was not trained on."""

    @field_validator("assets")
    @classmethod
    def _distinct_assets(cls, value: list[str]) -> list[str]:
        names = [a.strip().upper() for a in value]
        if len(set(names)) != len(names):
            raise ValueError(f"model.assets lists an asset twice: {value}")
        if len(names) == 1:
            raise ValueError("model.assets needs two or more assets (or none: a per-asset model)")
        return names


class EarlyStoppingConfig(_Section):
    patience: int = Field(default=15, ge=1)
    """Epochs without validation improvement before training stops."""
    min_delta: float = Field(default=1e-4, ge=0)
    """Smallest validation-loss decrease that counts as an improvement."""


class CheckpointConfig(_Section):
    every_n_epochs: int = Field(default=5, ge=1)
    """Write a periodic checkpoint every n epochs."""
    keep_best_only: bool = False
    """Keep only best.ckpt and last.ckpt (no periodic checkpoints)."""


class TrainingConfig(_Section):
    epochs: int = Field(default=100, ge=1)
    """Maximum training epochs."""
    batch_size: int = Field(default=64, ge=1)
    """Training batch size."""
    learning_rate: float = Field(default=3e-4, gt=0)
    """Peak learning rate of the non-SSM parameters (AdamW)."""
    ssm_learning_rate: float = Field(default=1e-3, gt=0)
    """Learning rate of the SSM parameters (no weight decay)."""
    weight_decay: float = Field(default=0.01, ge=0)
    """AdamW weight decay."""
    warmup_steps: int = Field(default=500, ge=0)
    """Linear warm-up steps before the cosine decay."""
    min_lr_ratio: float = Field(default=0.01, ge=0, le=1)
    """Final learning rate as a fraction of the peak."""
    gradient_clip: float = Field(default=1.0, gt=0)
    """Gradient-norm clip."""
    ema_decay: float = Field(default=0.0, ge=0, lt=1)
    """Decay of the exponential moving average of the weights (0 = off): validation, early
    stopping and the checkpoints' weights use the average, the optimiser trains the raw weights
    (checkpoints keep both, for an exact resume)."""
    accumulate_grad_batches: int = Field(default=1, ge=1)
    """Batches accumulated per optimiser step."""
    precision: Literal["auto", "32", "bf16-mixed", "16-mixed"] = "auto"
    """auto (GPU: bf16-mixed or 16-mixed; CPU: 32), 32, bf16-mixed or 16-mixed."""
    early_stopping: EarlyStoppingConfig
    """Early stopping on the validation loss."""
    checkpoint: CheckpointConfig
    """Checkpoint writing."""
    cuda_empty_cache_every: int = Field(default=10, ge=1)
    """Empty the CUDA cache every n batches."""
    val_forecast_samples: int = Field(default=128, ge=0)
    """Validation rows forecast each epoch for the coverage and CRPS metrics, spread evenly over
    the validation range and fixed after the first epoch (0 = off)."""
    max_train_batches_per_epoch: int | None = Field(default=None, ge=1)
    """Cap on training batches per epoch, for quick runs (null = all)."""
    # one model on several devices/nodes (Lightning's Trainer arguments of the same names)
    devices: int | Literal["auto"] = Field(default=1)
    """Devices one model trains on (a count or auto), as Lightning's Trainer(devices=...)."""
    num_nodes: int = Field(default=1, ge=1)
    """Nodes one model trains on, as Lightning's Trainer(num_nodes=...)."""
    strategy: Literal["auto", "ddp", "ddp_spawn", "fsdp"] = "auto"
    """Distributed strategy: auto, ddp, ddp_spawn or fsdp."""
    # optional MLflow tracking (also switched on by the MLFLOW_TRACKING_URI environment variable)
    mlflow_uri: str | None = None
    """MLflow tracking URI (null = off unless MLFLOW_TRACKING_URI is set)."""

    @field_validator("devices")
    @classmethod
    def _positive_devices(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("devices must be a positive count or 'auto'")
        return value

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class FallbackConfig(_Section):
    """What is served at a horizon where the model's card says it lost to the best baseline."""

    enabled: bool = True
    """Serve the fallback where the model lost significantly (false: always the model, with the
    card's sentence beside it)."""
    alpha: float = Field(default=0.05, gt=0, lt=1)
    """DM p-value below which a loss on the card counts (the model is worse at that horizon)."""
    mode: Literal["baseline", "pool"] = "baseline"
    """baseline: the best baseline's distribution; pool: the CRPS-optimal pool of the model and
    that baseline (weights from the card's range)."""


class AdaptiveConformalConfig(_Section):
    """Adaptive conformal inference (Gibbs & Candès 2021) on top of the calibrated forecast, per
    horizon and coverage, updated as outcomes become known (forex_diffusion.calibration.conformal)."""

    gamma: float = Field(default=0.01, gt=0, lt=1)
    """Step size γ of the running level: α ← α + γ·w·(α_nominal − miss), w the outcome's overlap
    weight min(1, Δ/h) (calibration.conformal); larger adapts faster and issues noisier
    intervals."""
    coverages: list[float] = [0.5, 0.8, 0.9, 0.95]
    """Central coverages whose levels adapt; the issued distribution follows the model between
    them."""
    by_session: bool = True
    """One set of levels per trading session of the decision time (forex_diffusion.sessions),
    each moved only by the outcomes of its session's forecasts (false: one set for all)."""
    by_phase: bool = True
    """One set of levels per 5-minute slot of the hour of the decision time (per session and
    slot with by_session): the bars on the full and the half hour carry the scheduled releases."""
    live: bool = True
    """The HTTP service's live forecasts (``/v1/bars``, the stream) adapt to the outcomes of its
    earlier live forecasts as their bars arrive."""

    @field_validator("coverages")
    @classmethod
    def _coverages(cls, v: list[float]) -> list[float]:
        if not v or len(set(v)) != len(v) or any(not 0 < c < 1 for c in v):
            raise ValueError("coverages must be distinct values strictly in (0, 1)")
        return v


class InferenceConfig(_Section):
    num_samples: int = Field(default=100, ge=2, le=10_000)
    """Samples per forecast in batches and evaluations."""
    forecast_samples: int = Field(default=640, ge=2, le=10_000)
    """Samples of one forecast of the predict command: 640 keeps the Monte-Carlo
    standard error of prob_up, sqrt(p(1-p)/S), at most 2 points.
    """
    seed: int | None = Field(default=None, ge=0)
    """Seed of the sampling noise for predict: the same seed gives a bit-identical forecast (null
    = fresh noise).
    """
    sampler: Literal["ddim", "ddpm", "dpmpp_2m", "dpmpp_2m_logsnr"] = "dpmpp_2m_logsnr"
    """Reverse-diffusion sampler: dpmpp_2m_logsnr (DPM-Solver++ 2M on log-SNR-spaced levels, for
    few steps), dpmpp_2m (trailing spacing), ddim or ddpm."""
    steps: int = Field(default=10, ge=1, le=1000)  # and at most model.diffusion.train_steps
    """Sampler steps (head calls) per forecast; at most model.diffusion.train_steps."""
    eta: float = Field(default=0.0, ge=0, le=1)
    """DDIM stochasticity (0 = deterministic given the initial noise)."""
    direction_threshold: float = Field(default=0.7, ge=0.5, le=1)
    """Confidence (probability of the more likely direction) at which a forecast is called up or
    down instead of neutral.
    """
    cache_ttl_seconds: float = Field(default=300, ge=0)
    """Seconds a forecast stays in the service's cache (0 = no cache)."""
    compile: bool = False
    """torch.compile the head's denoiser (slow start, faster sampling)."""
    log_predictions: bool = False
    """Record every forecast in the registry's inference log."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto (CUDA when present), cpu or cuda."""
    calibrated: bool = True  # apply the checkpoint's calibration when it has one
    """Apply the checkpoint's calibration (its location shrink, then its quantile recalibration
    map) to the samples when it has one."""
    calibration_samples: int = Field(default=200, ge=10, le=10_000)
    """Samples per forecast when fitting the recalibration map."""
    calibration_forecasts: int = Field(default=1500, ge=50)
    """Validation forecasts the recalibration map is fitted on (at most, evenly spaced)."""
    calibration_stride: int = Field(default=1, ge=1)
    """The calibration forecasts are drawn from the decision times on this stride x 5 min clock
    grid (1 = every 5m bar, the cadence of the live service), not ``data.decision_stride``: a
    grid fixed to some minutes of the hour weighs the phases of the hour's volatility unevenly."""
    calibration_by: Literal["none", "session", "phase"] = "none"
    """What ``calibrate`` conditions the recalibration map on: none (one map per horizon),
    session (one map per horizon and trading session of the decision time, as defined in
    forex_diffusion.sessions) or phase (one per horizon and 5-minute slot of the hour: the bars
    that open on the full and the half hour carry the scheduled releases); the per-horizon map
    where a cell is thin."""
    calibration_min_cell_forecasts: int = Field(default=100, ge=2)
    """With calibration_by=session or phase: a (horizon, cell) pair with fewer calibration forecasts
    than this uses the per-horizon map instead of its own."""
    calibration_location: bool = True
    """Whether ``calibrate`` also fits, per horizon, the share of the forecast's location (its
    median) kept, by the CRPS on the calibration forecasts, before the quantile map
    (forex_diffusion.calibration.location); an asset a global model never saw gets the shares
    pooled over the model's assets."""
    calibration_evidence: bool = True
    """Whether each quantile map keeps only the part of its departure from the identity that
    the calibration forecasts' independent outcomes support (forex_diffusion.calibration.
    quantile_map.evidence_weight): the outcomes of long horizons overlap, so a validation
    range holds few independent ones and a map fitted on them alone mostly fits noise."""
    max_staleness_minutes: float = Field(default=60, gt=0)  # latest bar's age allowed at asof
    """Largest age (minutes) of the latest bar at the decision time before a forecast is
    refused (predict --allow-stale overrides)."""
    fallback: FallbackConfig = FallbackConfig()
    """Per horizon, serve the best baseline (or the pool) where the model's card says it lost."""
    adaptive_conformal: AdaptiveConformalConfig = AdaptiveConformalConfig()
    """Online adaptive conformal levels: a row of ``evaluate`` and the live service's forecasts."""


class EvaluationConfig(_Section):
    """Walk-forward evaluation and baselines (SPEC §7); read by forex_diffusion.evaluation."""

    stride: int = Field(default=1, ge=1)
    """A decision time every n-th 5m bar on the clock grid: 1 = every bar, the cadence of the
    live service; 12 = hourly, on the hour only, whose next 5m bar (like the one at :30) is
    the hour's most volatile, so such a grid weighs the phases of the hour unevenly (a stride
    prime to 12, e.g. 7, visits them all in turn)."""
    baselines: tuple[Literal["rolling", "ewma", "ewma_seasonal", "garch"], ...] = (
        "rolling",
        "ewma",
        "ewma_seasonal",
        "garch",
    )
    """Baselines evaluated beside the model: rolling, ewma, ewma_seasonal, garch."""
    rolling_window: int = Field(default=288, ge=2)
    """5m returns in the rolling-volatility baseline's window."""
    ewma_lambdas: tuple[float, ...] = (0.8, 0.85, 0.9, 0.93, 0.95, 0.96, 0.97, 0.98, 0.99, 0.995)
    """Candidate EWMA decays, tuned on the tuning data."""
    ewma_objective: Literal["loglik", "crps"] = "loglik"
    """What the EWMA decay is tuned on: loglik or crps."""
    seasonal_slot_minutes: int = Field(default=60, ge=5)
    """Intraday slot length (minutes) of the seasonal EWMA baseline."""
    seasonal_prior_count: float = Field(default=20.0, ge=0)
    """Prior weight of the pooled scale in each seasonal slot."""
    garch_window: int = Field(default=2880, ge=100)
    """5m returns each GARCH fit uses."""
    garch_refit_every: int = Field(default=24, ge=1)
    """Decision times between GARCH refits."""
    garch_dist: Literal["normal", "t"] = "t"
    """GARCH innovation distribution: normal or t."""
    coverage_levels: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95)
    """Central-interval levels whose coverage is reported."""
    quantile_levels: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    """Quantile levels of the quantile loss, the reliability diagram and evaluate --export."""
    pit_bins: int = Field(default=10, ge=2)
    """Bins of the PIT histogram."""
    significance: float = Field(default=0.05, gt=0, lt=1)
    """Significance level of the tests (DM, Pesaran-Timmermann)."""
    dm_small_sample_correction: bool = True
    """Harvey-Leybourne-Newbold small-sample correction of the DM test."""
    dm_kernel: Literal["bartlett", "uniform"] = "uniform"
    """Long-run variance kernel of the DM test: uniform or bartlett."""
    tuning_days: int = Field(default=365, ge=7)
    """Days of data before the evaluated range used to tune the baselines."""
    batch_size: int = Field(default=64, ge=1)
    """Decision times per model call during evaluation."""
    fan_chart_horizon: int = Field(default=60, ge=5)
    """Horizon (minutes) shown in the report's fan chart."""
    learned_peer: bool = True
    """Add the LightGBM quantile-regression peer as a forecaster row of the evaluation."""
    peers: tuple[Literal["lightgbm", "nhits"], ...] = ("lightgbm", "nhits")
    """Which learned peers to run when ``learned_peer`` is on: ``lightgbm`` (LightGBM quantile
    regression) and ``nhits`` (NeuralForecast NHITS with a Student-t likelihood; needs the
    ``peers`` extra, else the report says the row was skipped)."""
    peer_samples: int = Field(default=200, ge=10)
    """Pseudo-samples per forecast drawn from each peer's distribution."""
    nhits_max_steps: int = Field(default=300, ge=1)
    """Training iterations of the NHITS peer (CPU, one thread, fixed seed)."""
    pool: bool = True
    """Add the CRPS-optimal linear pool of the model with the seasonal EWMA and GARCH baselines
    (weights fitted online on outcomes already known) as a forecaster row."""
    served: bool = True
    """Add what the fallback policy (inference.fallback) serves as a forecaster row, with the
    model's card when it is from before the evaluated range, else a walk-forward card."""
    adaptive_conformal: bool = True
    """Add the calibrated model under adaptive conformal levels (inference.adaptive_conformal),
    updated online with the outcomes known at each decision time, as a forecaster row."""

    @model_validator(mode="after")
    def _checks(self) -> EvaluationConfig:
        if not self.baselines or len(set(self.baselines)) != len(self.baselines):
            raise ValueError("baselines must be a non-empty list without repeats")
        for name in ("ewma_lambdas", "coverage_levels", "quantile_levels"):
            values = getattr(self, name)
            if not values or any(not 0 < v < 1 for v in values):
                raise ValueError(f"{name} must be a non-empty list of values strictly in (0, 1)")
        if len(set(self.peers)) != len(self.peers):
            raise ValueError("peers must be a list without repeats")
        if self.seasonal_slot_minutes % 5 or 1440 % self.seasonal_slot_minutes:
            raise ValueError("seasonal_slot_minutes must be a multiple of 5 that divides 1440")
        return self


class SSSDConfig(_Section):
    """The whole, validated configuration (frozen)."""

    seed: int = 42
    """Seed of training and evaluation randomness."""
    asset: AssetConfig
    """The asset."""
    paths: PathsConfig
    """Where data, artifacts, reports and the registry are."""
    data: DataConfig
    """Windows, horizons and splits."""
    features: FeaturesConfig
    """Feature engineering."""
    model: ModelConfig
    """The SSSD model."""
    training: TrainingConfig
    """Training."""
    inference: InferenceConfig
    """Forecasting."""
    evaluation: EvaluationConfig = EvaluationConfig()
    """Walk-forward evaluation and baselines."""

    @model_validator(mode="after")
    def _weights_match_horizons(self) -> SSSDConfig:
        if len(self.model.loss.horizon_weights) != len(self.data.horizons):
            raise ValueError(
                f"model.loss.horizon_weights has {len(self.model.loss.horizon_weights)} entries "
                f"but data.horizons has {len(self.data.horizons)}"
            )
        if self.inference.steps > self.model.diffusion.train_steps:
            raise ValueError(
                f"inference.steps={self.inference.steps} exceeds "
                f"model.diffusion.train_steps={self.model.diffusion.train_steps}"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict (dates as ISO strings)."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def with_overrides(self, overrides: Sequence[str]) -> SSSDConfig:
        """A new config with dotted overrides applied and validated again."""
        return config_from_dict(_merge([self.to_dict()], overrides, source="<config>"))


def config_for_asset(config: SSSDConfig, asset: str) -> SSSDConfig:
    """A global model's config seen as one asset's: that asset's symbol and default pip size,
    everything else (network, features, splits) shared."""
    name = asset.strip().upper()
    return config.with_overrides(
        [f"asset.symbol={name}", f"asset.pip_size={default_pip_size(name)}"]
    )


# --------------------------------------------------------------------------- loading

_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(text: str) -> Any:
    """``yaml.safe_load`` through libyaml's C parser where PyYAML has it (the same values,
    several times faster: a config read is on every command's start-up path)."""
    return yaml.load(text, Loader=_SAFE_LOADER)


def _read_yaml(path: Path) -> dict[str, Any]:
    if path.is_dir():
        raise ConfigError(f"{path} is a directory, not a config file (pass a YAML file)")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (pass an existing YAML file)")
    try:
        data = parse_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of sections, got {type(data).__name__}"
        )
    return data


def _plain(value: Any) -> Any:
    """YAML scalars OmegaConf cannot hold (dates) become ISO strings."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _merge(
    layers: Iterable[dict[str, Any]], overrides: Sequence[str], source: str
) -> dict[str, Any]:
    merged: Any = None
    for layer in layers:
        if not layer:
            continue  # merging nothing would only copy the config again
        node = OmegaConf.create(_plain(layer))
        merged = node if merged is None else OmegaConf.merge(merged, node)
    if merged is None:
        merged = OmegaConf.create({})
    for item in overrides:
        if "=" not in item:
            raise ConfigError(
                f"override {item!r} must look like section.key=value (e.g. training.epochs=100)"
            )
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"override {item!r} has an empty key")
        try:
            value = _plain(parse_yaml(raw)) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML: {exc}") from exc
        try:
            OmegaConf.update(merged, key, value, merge=True, force_add=True)
        except OmegaConfBaseException as exc:
            raise ConfigError(f"override {item!r} cannot be applied: {exc}") from exc
    container = OmegaConf.to_container(merged, resolve=True)
    assert isinstance(container, dict)
    return {str(k): v for k, v in container.items()}


def _field_names(model: type[BaseModel], path: Sequence[str | int]) -> list[str]:
    """Valid keys at ``path`` inside ``model`` (used to suggest corrections)."""
    current: Any = model
    for part in path:
        if isinstance(part, int) or not (
            isinstance(current, type) and issubclass(current, BaseModel)
        ):
            return []
        field = current.model_fields.get(str(part))
        if field is None:
            return []
        current = field.annotation
        # unwrap Optional[X]
        args = getattr(current, "__args__", ())
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if models:
            current = models[0]
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def format_validation_error(exc: ValidationError, source: str) -> str:
    """All problems of a validation error, one per line, with dotted paths and suggestions."""
    lines = [f"invalid configuration ({source}): {exc.error_count()} problem(s)"]
    for err in exc.errors():
        loc = [p for p in err["loc"]]
        dotted = ".".join(str(p) for p in loc) or "<root>"
        if err["type"] == "extra_forbidden":
            valid = _field_names(SSSDConfig, loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
            hint = f"; did you mean '{'.'.join([*map(str, loc[:-1]), close[0]])}'?" if close else ""
            where = ".".join(map(str, loc[:-1])) or "the top level"
            lines.append(
                f"  - {dotted}: unknown key{hint} (valid keys in {where}: {', '.join(valid)})"
            )
        elif err["type"] == "missing":
            lines.append(f"  - {dotted}: required key is missing")
        else:
            given = err.get("input")
            shown = repr(given) if not isinstance(given, dict) else "a mapping"
            lines.append(f"  - {dotted}: {err['msg']} (got {shown})")
    return "\n".join(lines)


def config_from_dict(data: dict[str, Any], source: str = "<dict>") -> SSSDConfig:
    """Validate a plain dict into an ``SSSDConfig`` (raises ConfigError listing every problem)."""
    try:
        return SSSDConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def resolve_preset(preset: str | Path) -> Path:
    """A preset path, or a bare name looked up beside the default config (``cpu_small``)."""
    path = Path(preset)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        return path
    candidate = PRESETS_DIR / f"{preset}.yaml"
    if not candidate.is_file():
        known = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
        raise ConfigError(f"unknown preset {preset!r}: no {candidate}; presets there: {known}")
    return candidate


def load_sssd_config(
    path: str | Path = DEFAULT_CONFIG_PATH,
    asset_config: str | Path | None = None,
    overrides: Sequence[str] = (),
    preset: str | Path | None = None,
) -> SSSDConfig:
    """Load ``path``, layer ``preset``, ``asset_config`` and ``overrides`` on it, and validate.

    Args:
        path: the default config YAML.
        asset_config: optional YAML layered on top (e.g. configs/sssd/eurusd_config.yaml).
        overrides: ``"section.key=value"`` strings, values parsed as YAML.
        preset: optional YAML layered between the defaults and the asset config: a path, or a
            name such as ``cpu_small`` for ``configs/sssd/cpu_small.yaml``.

    Raises:
        ConfigError: unreadable file, bad override, or validation problems (all listed).
    """
    if isinstance(overrides, str):
        overrides = [overrides]
    layers = [_read_yaml(Path(path))]
    source = str(path)
    if preset is not None:
        preset_path = resolve_preset(preset)
        layers.append(_read_yaml(preset_path))
        source += f" + {preset_path}"
    if asset_config is not None:
        layers.append(_read_yaml(Path(asset_config)))
        source += f" + {asset_config}"
    if overrides:
        source += " + overrides"
    return config_from_dict(_merge(layers, overrides, source), source)


def config_json_schema() -> dict[str, Any]:
    """JSON schema of the configuration; every key carries a one-line ``description``."""
    return _one_line_descriptions(json_schema_with_field_docs(SSSDConfig, _field_docs()))


@functools.cache
def _field_docs() -> dict[str, dict[str, str]]:
    """The attribute docstrings of this module's sections, read once per process."""
    return attribute_docstrings(Path(__file__).read_text(encoding="utf-8"))


def _one_line_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: " ".join(v.split())
            if k == "description" and isinstance(v, str)
            else _one_line_descriptions(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_one_line_descriptions(v) for v in node]
    return node


# --------------------------------------------------------------------------- provenance


@dataclass(frozen=True)
class ConfigLayer:
    """One layer of an effective configuration: a YAML file or dotted ``key=value`` strings,
    named by where it came from (``default``, ``preset``, ``asset file``, ``env``, ...)."""

    source: str
    data: dict[str, Any]
    overrides: tuple[str, ...] = ()
    origin: str = ""

    @classmethod
    def file(cls, source: str, path: str | Path, preset: bool = False) -> ConfigLayer:
        """The YAML at ``path`` (``preset``: a preset name or path, see :func:`resolve_preset`)."""
        resolved = resolve_preset(path) if preset else Path(path)
        return cls(source, _read_yaml(resolved), origin=str(resolved))

    @classmethod
    def dotted(cls, source: str, overrides: Sequence[str]) -> ConfigLayer:
        """Dotted ``section.key=value`` overrides (values parsed as YAML)."""
        return cls(source, {}, tuple(overrides), origin=source)


def _leaf_paths(data: Any, prefix: str = "") -> Iterator[str]:
    """Dotted paths of the leaves of a nested mapping (lists are leaves)."""
    if isinstance(data, dict) and data:
        for key, value in data.items():
            yield from _leaf_paths(value, f"{prefix}{key}.")
    elif prefix:
        yield prefix[:-1]


def _layer_keys(layer: ConfigLayer) -> list[str]:
    return [*_leaf_paths(layer.data), *(o.split("=", 1)[0].strip() for o in layer.overrides)]


def load_traced_config(
    layers: Sequence[ConfigLayer], moves_with_artifacts: Sequence[str] = ()
) -> tuple[SSSDConfig, dict[str, str]]:
    """The configuration of ``layers`` (later wins) and, per dotted leaf key, the source of
    the layer that set it (``default`` for the models' built-in defaults).

    ``moves_with_artifacts``: ``paths`` keys that follow a new ``paths.artifacts_dir`` when
    their value lay under the old one and no layer after the first set them.

    Raises:
        ConfigError: as :func:`load_sssd_config`.
    """
    if not layers:
        raise ConfigError("no configuration layers given")
    origin = " + ".join(layer.origin for layer in layers if layer.data or layer.overrides)
    overrides = [o for layer in layers for o in layer.overrides]
    merged = _merge([layer.data for layer in layers], overrides, origin)
    set_by: dict[str, str] = {}
    for layer in layers:
        for key in _layer_keys(layer):
            set_by[key] = layer.source
    moved = [
        k
        for k in moves_with_artifacts
        if set_by.get(f"paths.{k}", layers[0].source) == layers[0].source
    ]
    try:
        first = PathsConfig.model_validate(layers[0].data.get("paths") or {})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, layers[0].origin)) from None
    paths = merged.get("paths", {})
    old_root, new_root = Path(first.artifacts_dir), paths.get("artifacts_dir")
    extra = []
    if new_root is not None and Path(new_root) != old_root:
        for key in moved:
            value = Path(paths.get(key, getattr(first, key)))
            if value.is_relative_to(old_root):
                extra.append(f"paths.{key}={Path(new_root) / value.relative_to(old_root)}")
                set_by[f"paths.{key}"] = set_by["paths.artifacts_dir"]
    cfg = config_from_dict(_merge([merged], extra, origin) if extra else merged, origin)
    sources = {key: _source_of(key, set_by) for key in _leaf_paths(cfg.to_dict())}
    return cfg, sources


def _source_of(key: str, set_by: dict[str, str]) -> str:
    """The source of ``key`` or of the nearest enclosing key a layer set as a whole."""
    parts = key.split(".")
    for n in range(len(parts), 0, -1):
        found = set_by.get(".".join(parts[:n]))
        if found is not None:
            return found
    return "default"
