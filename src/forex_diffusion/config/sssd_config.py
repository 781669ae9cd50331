"""Strict, typed configuration: YAML defaults <- asset config <- dotted overrides.

Every section is a frozen pydantic model that forbids unknown keys. ``load_sssd_config``
reports all problems at once, each with its full dotted path; unknown keys come with the
nearest valid key as a suggestion.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from datetime import date
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from forex_diffusion.errors import ConfigError
from forex_diffusion.timeframes import ONE_DAY, UtcRange, timeframe_minutes, to_utc


def _presets_dir() -> Path:
    """The YAML presets shipped inside the package (``forex_diffusion/configs/sssd``).

    ``configs/`` at the repository root links here. A package installed from a wheel or in
    editable mode lives on the file system, so the resource is a real directory.
    """
    folder = files("forex_diffusion").joinpath("configs", "sssd")
    return folder if isinstance(folder, Path) else Path(str(folder))


# Relative paths inside a config (data_dir, artifacts_dir, ...) are relative to the working
# directory, not to this file.
PRESETS_DIR = _presets_dir()
DEFAULT_CONFIG_PATH = PRESETS_DIR / "default_config.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def default_pip_size(symbol: str) -> float:
    """Conventional pip size: 0.01 for JPY crosses, 0.1 for gold, 0.0001 otherwise."""
    s = symbol.upper()
    if s.endswith("JPY"):
        return 0.01
    if s.startswith("XAU"):
        return 0.1
    return 0.0001


class AssetConfig(_Section):
    symbol: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_]+$")
    pip_size: float = Field(gt=0)
    base_timeframe: Literal["1m", "5m"] = "1m"


class PathsConfig(_Section):
    data_dir: str = "data"
    artifacts_dir: str = "artifacts"
    checkpoint_dir: str = "artifacts/sssd/checkpoints"
    log_dir: str = "artifacts/sssd/logs"
    reports_dir: str = "reports"
    db_url: str | None = None


class DateRange(_Section):
    start: date
    end: date

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
    val: DateRange
    test: DateRange

    @model_validator(mode="after")
    def _disjoint(self) -> SplitsConfig:
        if not self.train.end < self.val.start:
            raise ValueError("val.start must come after train.end")
        if not self.val.end < self.test.start:
            raise ValueError("test.start must come after val.end")
        return self


class DataConfig(_Section):
    timeframes: tuple[str, ...] = ("5m", "15m", "1h", "4h")
    lookbacks: dict[str, Annotated[int, Field(ge=1)]]
    horizons: tuple[int, ...] = (5, 15, 60, 240)
    splits: SplitsConfig
    embargo_minutes: int | None = Field(default=None, ge=0)
    decision_stride: int = Field(default=1, ge=1)
    num_workers: int = Field(default=0, ge=0)

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
    rv_windows: tuple[Annotated[int, Field(ge=2)], ...] = Field(default=(6, 12, 48), min_length=1)
    atr_window: int = Field(default=14, ge=2)
    rsi_window: int = Field(default=14, ge=2)
    bollinger_window: int = Field(default=20, ge=2)
    bollinger_k: float = Field(default=2.0, gt=0)
    macd_fast: int = Field(default=12, ge=1)
    macd_slow: int = Field(default=26, ge=2)
    macd_signal: int = Field(default=9, ge=1)
    ema_windows: tuple[Annotated[int, Field(ge=2)], ...] = Field(default=(12, 48), min_length=1)
    donchian_window: int = Field(default=20, ge=2)
    volume_window: int = Field(default=20, ge=1)
    vol_ewma_lambda: float = Field(default=0.94, gt=0, lt=1)

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
    n_layers: int = Field(default=4, ge=1)
    state_dim: int = Field(default=64, ge=2, multiple_of=2)
    init: Literal["s4d_lin", "s4d_inv", "s4d_legs"] = "s4d_lin"
    dt_min: float = Field(default=1e-3, gt=0)
    dt_max: float = Field(default=1e-1, gt=0)
    dropout: float = Field(default=0.1, ge=0, lt=1)
    cross_attention: bool = True
    attention_heads: int = Field(default=4, ge=1)
    context_dim: int = Field(default=512, ge=1)

    @model_validator(mode="after")
    def _checks(self) -> EncoderConfig:
        if self.dt_min >= self.dt_max:
            raise ValueError("dt_min must be smaller than dt_max")
        if self.d_model % self.attention_heads:
            raise ValueError("d_model must be divisible by attention_heads")
        return self


class HeadConfig(_Section):
    hidden_dim: int = Field(default=48, ge=1)
    n_blocks: int = Field(default=3, ge=1)
    timestep_embedding_dim: int = Field(default=128, ge=2, multiple_of=2)
    dropout: float = Field(default=0.0, ge=0, lt=1)


class DiffusionConfig(_Section):
    train_steps: int = Field(default=1000, ge=2)
    cosine_s: float = Field(default=0.008, gt=0)
    max_beta: float = Field(default=0.999, gt=0, le=0.9999)
    prediction: Literal["epsilon", "v"] = "v"


class LossConfig(_Section):
    horizon_weights: tuple[float, ...] = (0.4, 0.3, 0.2, 0.1)
    noise_draws: int = Field(default=4, ge=1)
    consistency_weight: float = Field(default=0.0, ge=0)

    @field_validator("horizon_weights")
    @classmethod
    def _positive(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(w < 0 for w in value) or sum(value) <= 0:
            raise ValueError("horizon weights must be non-negative with a positive sum")
        return value


class ModelConfig(_Section):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    encoder: EncoderConfig
    horizon_embedding_dim: int = Field(default=128, ge=1)
    head: HeadConfig
    diffusion: DiffusionConfig
    loss: LossConfig


class EarlyStoppingConfig(_Section):
    patience: int = Field(default=15, ge=1)
    min_delta: float = Field(default=1e-4, ge=0)


class CheckpointConfig(_Section):
    every_n_epochs: int = Field(default=5, ge=1)
    keep_best_only: bool = False


class TrainingConfig(_Section):
    epochs: int = Field(default=100, ge=1)
    batch_size: int = Field(default=64, ge=1)
    learning_rate: float = Field(default=3e-4, gt=0)
    ssm_learning_rate: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_steps: int = Field(default=500, ge=0)
    min_lr_ratio: float = Field(default=0.01, ge=0, le=1)
    gradient_clip: float = Field(default=1.0, gt=0)
    accumulate_grad_batches: int = Field(default=1, ge=1)
    precision: Literal["auto", "32", "bf16-mixed", "16-mixed"] = "auto"
    early_stopping: EarlyStoppingConfig
    checkpoint: CheckpointConfig
    cuda_empty_cache_every: int = Field(default=10, ge=1)
    val_forecast_samples: int = Field(default=32, ge=0)
    max_train_batches_per_epoch: int | None = Field(default=None, ge=1)

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class InferenceConfig(_Section):
    num_samples: int = Field(default=100, ge=2, le=10_000)
    sampler: Literal["ddim", "ddpm", "dpmpp_2m"] = "dpmpp_2m"
    steps: int = Field(default=20, ge=1)
    eta: float = Field(default=0.0, ge=0, le=1)
    direction_threshold: float = Field(default=0.7, ge=0.5, le=1)
    cache_ttl_seconds: float = Field(default=300, ge=0)
    compile: bool = False
    log_predictions: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    calibrated: bool = True  # apply the checkpoint's recalibration map when it has one
    calibration_samples: int = Field(default=200, ge=10, le=10_000)
    calibration_forecasts: int = Field(default=1500, ge=50)


class EvaluationConfig(_Section):
    """Walk-forward evaluation and baselines (SPEC §7); read by forex_diffusion.evaluation."""

    stride: int = Field(default=12, ge=1)
    baselines: tuple[Literal["rolling", "ewma", "ewma_seasonal", "garch"], ...] = (
        "rolling",
        "ewma",
        "ewma_seasonal",
        "garch",
    )
    rolling_window: int = Field(default=288, ge=2)
    ewma_lambdas: tuple[float, ...] = (0.8, 0.85, 0.9, 0.93, 0.95, 0.96, 0.97, 0.98, 0.99, 0.995)
    ewma_objective: Literal["loglik", "crps"] = "loglik"
    seasonal_slot_minutes: int = Field(default=60, ge=5)
    seasonal_prior_count: float = Field(default=20.0, ge=0)
    garch_window: int = Field(default=2880, ge=100)
    garch_refit_every: int = Field(default=24, ge=1)
    garch_dist: Literal["normal", "t"] = "t"
    coverage_levels: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95)
    quantile_levels: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    pit_bins: int = Field(default=10, ge=2)
    significance: float = Field(default=0.05, gt=0, lt=1)
    dm_small_sample_correction: bool = True
    dm_kernel: Literal["bartlett", "uniform"] = "uniform"
    tuning_days: int = Field(default=365, ge=7)
    batch_size: int = Field(default=64, ge=1)
    fan_chart_horizon: int = Field(default=60, ge=5)

    @model_validator(mode="after")
    def _checks(self) -> EvaluationConfig:
        if not self.baselines or len(set(self.baselines)) != len(self.baselines):
            raise ValueError("baselines must be a non-empty list without repeats")
        for name in ("ewma_lambdas", "coverage_levels", "quantile_levels"):
            values = getattr(self, name)
            if not values or any(not 0 < v < 1 for v in values):
                raise ValueError(f"{name} must be a non-empty list of values strictly in (0, 1)")
        if self.seasonal_slot_minutes % 5 or 1440 % self.seasonal_slot_minutes:
            raise ValueError("seasonal_slot_minutes must be a multiple of 5 that divides 1440")
        return self


class SSSDConfig(_Section):
    """The whole, validated configuration (frozen)."""

    seed: int = 42
    asset: AssetConfig
    paths: PathsConfig
    data: DataConfig
    features: FeaturesConfig
    model: ModelConfig
    training: TrainingConfig
    inference: InferenceConfig
    evaluation: EvaluationConfig = EvaluationConfig()

    @model_validator(mode="after")
    def _weights_match_horizons(self) -> SSSDConfig:
        if len(self.model.loss.horizon_weights) != len(self.data.horizons):
            raise ValueError(
                f"model.loss.horizon_weights has {len(self.model.loss.horizon_weights)} entries "
                f"but data.horizons has {len(self.data.horizons)}"
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


# --------------------------------------------------------------------------- loading


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (pass an existing YAML file)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
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
    merged: Any = OmegaConf.create({})
    for layer in layers:
        merged = OmegaConf.merge(merged, OmegaConf.create(_plain(layer)))
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
            value = _plain(yaml.safe_load(raw)) if raw.strip() else None
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
    """JSON schema of the configuration."""
    return SSSDConfig.model_json_schema()
