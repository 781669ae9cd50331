"""Real EURUSD in a temporary candle store, a small config and a tiny SSSD checkpoint for the
walk-forward evaluation tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from forex_diffusion.config.sssd_config import SSSDConfig, load_sssd_config
from forex_diffusion.data.candles import validate_candles
from forex_diffusion.data.store import CandleStore
from forex_diffusion.dataset.source import build_feature_source
from forex_diffusion.models.build import build_sssd_model
from forex_diffusion.models.checkpoint import save_checkpoint
from forex_diffusion.registry.repository import Registry
from forex_diffusion.training.data_module import SSSDDataModule
from forex_diffusion.training.train_sssd import SSSDTrainer

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "sssd" / "default_config.yaml"

# A two-hour hole cut out of a weekday of the evaluated week: targets in it must be excluded.
HOLE = (pd.Timestamp("2019-01-30 10:00", tz="UTC"), pd.Timestamp("2019-01-30 12:00", tz="UTC"))
EVAL_START, EVAL_END = "2019-01-28", "2019-02-03"  # Monday to Sunday, inclusive
MODEL_NAME = "tiny_eval"

SPLITS = (
    "data.splits.train={start: 2019-01-01, end: 2019-01-20}",
    "data.splits.val={start: 2019-01-21, end: 2019-01-25}",
    "data.splits.test={start: 2019-01-26, end: 2019-02-08}",
)
TINY_MODEL = (
    "data.lookbacks={5m: 24, 15m: 12, 1h: 6, 4h: 3}",
    "model.name=" + MODEL_NAME,
    "model.encoder.d_model=16",
    "model.encoder.n_layers=1",
    "model.encoder.state_dim=8",
    "model.encoder.attention_heads=2",
    "model.encoder.context_dim=16",
    "model.encoder.dropout=0.0",
    "model.horizon_embedding_dim=8",
    "model.head.hidden_dim=32",
    "model.head.n_blocks=1",
    "model.head.timestep_embedding_dim=16",
    "model.diffusion.train_steps=100",
    "inference.steps=4",
    # short feature warm-ups, so a few weeks of candles are enough for the 4h windows
    "features.rv_windows=[6, 12]",
    "features.atr_window=5",
    "features.rsi_window=5",
    "features.bollinger_window=10",
    "features.macd_fast=4",
    "features.macd_slow=8",
    "features.macd_signal=3",
    "features.ema_windows=[6, 12]",
    "features.donchian_window=10",
    "inference.device=cpu",
)


def real_eurusd(fx_dir: Path) -> pd.DataFrame:
    """EURUSD 1m bars 2019-01-01 .. about 2019-02-08, with :data:`HOLE` removed."""
    raw = pd.read_csv(fx_dir / "EURUSD_M1_2019.csv.gz", nrows=40_000)
    raw.index = pd.DatetimeIndex(pd.to_datetime(raw.pop("timestamp"), utc=True), name="timestamp")
    candles = validate_candles(raw)
    return candles[(candles.index < HOLE[0]) | (candles.index >= HOLE[1])]


def write_store(root: Path, candles: pd.DataFrame) -> Path:
    with CandleStore(root) as store:
        store.write("EURUSD", candles, source="EURUSD_M1_2019.csv.gz")
    return root


def config_overrides(root: Path) -> list[str]:
    """The 2019 splits, everything written under ``root``, and a tiny model."""
    return [
        f"paths.data_dir={root / 'store'}",
        f"paths.artifacts_dir={root / 'artifacts'}",
        f"paths.checkpoint_dir={root / 'checkpoints'}",
        f"paths.log_dir={root / 'logs'}",
        f"paths.reports_dir={root / 'reports'}",
        *SPLITS,
        *TINY_MODEL,
        "evaluation.learned_peer=false",  # its own test: tests/test_evaluation_peer.py
        "evaluation.pool=false",  # tests/test_evaluation_pool.py and the quickstart test
        "evaluation.served=false",  # tests/test_model_cards.py
        "evaluation.adaptive_conformal=false",  # tests/test_walk_forward.py (its own test)
    ]


def eval_config(root: Path, extra: Sequence[str] = ()) -> SSSDConfig:
    """The default config with :func:`config_overrides` and ``extra``."""
    return load_sssd_config(DEFAULT_CONFIG, overrides=[*config_overrides(root), *extra])


TINY_TRAINING = (
    "training.epochs=1",
    "training.max_train_batches_per_epoch=3",
    "training.batch_size=16",
    "training.val_forecast_samples=4",
    "training.precision=32",
    "data.decision_stride=6",
)


def train_tiny_model(config: SSSDConfig, candles: pd.DataFrame, registry: Registry) -> Path:
    """Train the tiny model for one short epoch (checkpoint and registry rows as in real
    training); returns its best checkpoint."""
    config = config.with_overrides(TINY_TRAINING)
    result = SSSDTrainer(config, registry=registry, accelerator="cpu").train(
        SSSDDataModule(config=config, candles=candles)
    )
    assert result.status == "completed" and result.best_checkpoint is not None, result
    return result.best_checkpoint


def write_untrained_checkpoint(config: SSSDConfig, candles: pd.DataFrame) -> Path:
    """A real checkpoint of an untrained tiny model: the standardizer is fitted on the
    training split exactly as in training; the weights are the seeded initialisation."""
    source = build_feature_source(candles, config, standardizer=None)
    names = {tf: list(n) for tf, n in source.feature_names.items()}
    torch.manual_seed(config.seed)
    model = build_sssd_model(config, {tf: len(n) for tf, n in names.items()})
    path = Path(config.paths.checkpoint_dir) / "EURUSD" / config.model.name / "best.ckpt"
    return save_checkpoint(path, model, config, names, source.standardizer.to_dict())


def expected_targets(
    candles: pd.DataFrame, times: pd.DatetimeIndex, horizons: Sequence[int]
) -> np.ndarray:
    """log(close(t+h)/close(t)) from the 1m bars, computed independently of the package:
    the close of the 5m bar ending at T is the last 1m close in [T − 5 min, T) (NaN if none)."""
    labels = candles.index.floor("5min")
    closes = candles["close"].groupby(labels).last()
    closes.index = closes.index + pd.Timedelta(minutes=5)  # index by close time

    def at(ts: pd.DatetimeIndex) -> np.ndarray:
        return closes.reindex(ts).to_numpy(dtype=np.float64)

    c0 = at(times)
    return np.stack([np.log(at(times + pd.Timedelta(minutes=h)) / c0) for h in horizons], axis=1)
