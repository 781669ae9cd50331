"""The recalibration map end to end: fitted on the validation range only, stored in the
checkpoint, applied by the inference service (switchable), absent → said so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from forex_diffusion.calibration import (
    CellRecalibrator,
    QuantileRecalibrator,
    load_recalibrator,
)
from forex_diffusion.config.sssd_config import SSSDConfig
from forex_diffusion.data.store import CandleStore
from forex_diffusion.errors import ConfigError
from forex_diffusion.inference.calibrate import calibrate_checkpoint, calibration_dataset
from forex_diffusion.inference.sssd_inference import SSSDInferenceService
from forex_diffusion.models.checkpoint import load_checkpoint
from forex_diffusion.timeframes import UtcRange
from forex_diffusion.training.data_module import SSSDDataModule
from forex_diffusion.training.train_sssd import SSSDTrainer
from training_utils import tiny_config, two_month_store

VAL = UtcRange(
    "validation", pd.Timestamp("2019-03-04", tz="UTC"), pd.Timestamp("2019-03-21 12:00", tz="UTC")
)


@pytest.fixture(scope="module")
def trained(
    fx_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, SSSDConfig, Path]:
    root = tmp_path_factory.mktemp("calibrated")
    data_dir = two_month_store(fx_dir, root)
    cfg = tiny_config(root, "training.epochs=1", "training.max_train_batches_per_epoch=4")
    result = SSSDTrainer(cfg).train(SSSDDataModule(data_path=data_dir, config=cfg))
    assert result.best_checkpoint is not None
    return root, cfg, result.best_checkpoint


def _copy(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes())
    return dst


def test_checkpoint_without_calibration_loads_and_says_so(trained) -> None:
    root, _, best = trained
    path = _copy(best, root / "raw.ckpt")
    assert load_checkpoint(path).calibration is None
    svc = SSSDInferenceService.from_checkpoint(path, device="cpu")
    assert svc.calibration is None
    candles = CandleStore(root / "data").load("EURUSD")
    pred = svc.predict(candles, num_samples=32, generator=torch.Generator().manual_seed(0))
    assert pred.calibrated is False and pred.to_dict()["calibrated"] is False
    with pytest.raises(ConfigError, match=r"no calibration.*forex-diffusion calibrate"):
        svc.predict(candles, num_samples=32, calibrated=True)


def test_calibration_round_trips_and_is_applied(trained) -> None:
    root, _, best = trained
    path = _copy(best, root / "cal.ckpt")
    with CandleStore(root / "data") as store:
        result = calibrate_checkpoint(path, store, rng=VAL, num_samples=64, max_forecasts=300)
    assert result.forecasts >= 50 and set(result.coverage90_after) == {5, 15, 60, 240}
    # the maps are fitted on the PIT of the forecasts as they are issued (location shrunk
    # first), so in-sample they cover as fitted
    for h, covered in result.coverage90_after.items():
        assert covered == pytest.approx(0.9, abs=0.015), (h, result.coverage90_after)
    stored = load_checkpoint(path)
    assert stored.calibration is not None
    back = QuantileRecalibrator.from_dict(stored.calibration)
    assert back.to_dict() == result.calibration.to_dict()
    assert back.fitted_on["range"] == [VAL.start.isoformat(), VAL.end.isoformat()]
    # weights untouched by attaching the map
    for key, value in load_checkpoint(best).model.state_dict().items():
        assert torch.equal(value, stored.model.state_dict()[key]), key

    svc = SSSDInferenceService.from_checkpoint(path, device="cpu")
    candles = CandleStore(root / "data").load("EURUSD")
    cal = svc.predict(candles, num_samples=64, generator=torch.Generator().manual_seed(1))
    raw = svc.predict(
        candles, num_samples=64, generator=torch.Generator().manual_seed(1), calibrated=False
    )
    assert cal.calibrated and not raw.calibrated
    for h in svc.horizons:
        # the same draws, moved by a monotone map: same order (two draws the map takes to one
        # value may tie), other values
        in_raw_order = cal.samples[h][np.argsort(raw.samples[h], kind="stable")]
        assert np.all(np.diff(in_raw_order) >= 0)
        assert not np.allclose(cal.samples[h], raw.samples[h])
        assert cal.std[h] == pytest.approx(np.std(cal.samples[h], ddof=1))


def test_calibration_sees_only_its_range(trained, tmp_path: Path) -> None:
    """Candles after the calibration range change nothing; candles inside it do."""
    root, _, best = trained
    candles = CandleStore(root / "data").load("EURUSD")
    maps = []
    for name, lo, hi in [
        ("same", None, None),
        ("after", VAL.end, None),
        ("inside", VAL.start, VAL.end),
    ]:
        data = candles.copy()
        if lo is not None:
            sel = (data.index >= lo) & ((data.index < hi) if hi is not None else True)
            rng = np.random.default_rng(0)
            factor = np.exp(np.cumsum(rng.normal(0, 3e-4, int(sel.sum()))))
            for col in ("open", "high", "low", "close"):
                data.loc[sel, col] = data.loc[sel, col].to_numpy() * factor
        store_dir = tmp_path / name
        with CandleStore(store_dir) as store:
            store.write("EURUSD", data, source=name)
            path = _copy(best, tmp_path / f"{name}.ckpt")
            maps.append(
                calibrate_checkpoint(
                    path, store, rng=VAL, num_samples=32, max_forecasts=200
                ).calibration.to_dict()
            )
    assert maps[1] == maps[0]
    assert maps[2] != maps[0]


@pytest.mark.parametrize(("by", "min_cell"), [("session", 40), ("phase", 20)])
def test_cell_calibration_round_trips_and_follows_the_decision_time(
    trained, by: str, min_cell: int
) -> None:
    root, _, best = trained
    path = _copy(best, root / f"{by}.ckpt")
    with CandleStore(root / "data") as store:
        result = calibrate_checkpoint(
            path,
            store,
            rng=VAL,
            num_samples=64,
            max_forecasts=300,
            by=by,
            min_cell_forecasts=min_cell,
        )
        dataset = calibration_dataset(
            SSSDInferenceService.from_checkpoint(path, device="cpu"),
            store.load("EURUSD", end=VAL.end),
            VAL,
        )
    cal = result.calibration
    assert isinstance(cal, CellRecalibrator) and cal.by_cell  # some cells have own maps
    stored = load_checkpoint(path).calibration
    assert stored is not None and load_recalibrator(stored).to_dict() == cal.to_dict()

    svc = SSSDInferenceService.from_checkpoint(path, device="cpu")
    assert isinstance(svc.calibration, CellRecalibrator)
    idx = np.arange(0, len(dataset), max(1, len(dataset) // 40))
    raw, fixed = (
        svc.sample_log_returns(
            dataset, 32, torch.Generator().manual_seed(2), calibrated=c, indices=idx
        )
        for c in (False, True)
    )
    ns = dataset.decision_ns[idx]
    for j, h in enumerate(svc.horizons):
        # each forecast went through the map of its own decision time's session (the location
        # shrink moves the median to zero at some horizons: zero there up to rounding)
        close = {"rtol": 1e-12, "atol": 1e-18}
        np.testing.assert_allclose(fixed[:, j], cal.transform_at(h, raw[:, j], ns), **close)
        np.testing.assert_allclose(svc.recalibrate(raw, ns)[:, j], fixed[:, j], **close)
    candles = CandleStore(root / "data").load("EURUSD")
    pred = svc.predict(candles, num_samples=32, generator=torch.Generator().manual_seed(1))
    assert pred.calibrated


def test_calibration_forecasts_come_from_every_phase_of_the_hour(trained) -> None:
    """The model trains on a quarter-hour grid (data.decision_stride=3), the live service
    forecasts at every 5m bar: the map is fitted on every bar's forecasts, not the grid's."""
    root, cfg, best = trained
    assert cfg.data.decision_stride == 3
    svc = SSSDInferenceService.from_checkpoint(best, device="cpu")
    candles = CandleStore(root / "data").load("EURUSD", end=VAL.end)
    minutes = {}
    for stride in (1, 3):
        svc.config = cfg.with_overrides([f"inference.calibration_stride={stride}"])
        ns = calibration_dataset(svc, candles, VAL).decision_ns
        minutes[stride] = set((pd.DatetimeIndex(ns, tz="UTC").minute).tolist())
    assert minutes[1] == set(range(0, 60, 5))
    assert minutes[3] == {0, 15, 30, 45}
