"""SSSDTimeSeriesDataset / collate_fn / SSSDDataModule: shapes, views, alignment, splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from forex_diffusion.config.sssd_config import SSSDConfig
from forex_diffusion.dataset.candidates import (
    EMBARGO,
    INSUFFICIENT_HISTORY,
    WINDOW_CROSSES_SPLIT_START,
)
from forex_diffusion.dataset.collate import collate_fn
from forex_diffusion.dataset.windows import SSSDTimeSeriesDataset
from forex_diffusion.errors import DataError
from forex_diffusion.features.unified_pipeline import (
    feature_warmup,
    fit_standardizer,
    multi_timeframe_features,
    unified_feature_pipeline,
)
from forex_diffusion.training.data_module import SSSDDataModule
from fx_test_utils import load_fx, make_config

LOOKBACKS = {"5m": 500, "15m": 166, "1h": 41, "4h": 10}
TF_MIN = {"5m": 5, "15m": 15, "1h": 60, "4h": 240}
NS_MIN = 60_000_000_000


@pytest.fixture(scope="module")
def candles(fx_dir: Path) -> pd.DataFrame:
    return load_fx(fx_dir, "2019-01-01", "2019-04-01")


@pytest.fixture(scope="module")
def cfg(default_config_path: Path) -> SSSDConfig:
    return make_config(default_config_path).with_overrides(["training.batch_size=16"])


@pytest.fixture(scope="module")
def dm(candles: pd.DataFrame, cfg: SSSDConfig) -> SSSDDataModule:
    module = SSSDDataModule(config=cfg, candles=candles)
    module.setup("fit")
    return module


def test_sample_shapes_dtypes_and_views(dm: SSSDDataModule) -> None:
    ds = dm.train_dataset
    assert ds is not None and len(ds) > 2000
    feats, targets, hidx = ds[123]
    f = dm.input_dims["5m"]
    assert f == 28 and set(dm.input_dims.values()) == {f}
    assert {tf: tuple(x.shape) for tf, x in feats.items()} == {
        tf: (n, f) for tf, n in LOOKBACKS.items()
    }
    assert all(x.dtype == torch.float32 for x in feats.values())
    assert targets.shape == (4, 1) and targets.dtype == torch.float32
    assert torch.equal(hidx, torch.arange(4))
    for tf, x in feats.items():  # windows are views of one contiguous block per timeframe
        block = ds.source.blocks[tf].values
        assert block.flags.c_contiguous and block.dtype == np.float32
        assert np.shares_memory(x.numpy(), block)
    assert ds.source is dm.val_dataset.source is dm.test_dataset.source  # type: ignore[union-attr]
    np.testing.assert_allclose(
        targets[:, 0].numpy(), ds.log_returns[123] / ds.scales[123], rtol=1e-6
    )
    assert ds.decision_times.is_monotonic_increasing and len(ds.decision_times) == len(ds)
    assert ds.scales.shape == ds.log_returns.shape == (len(ds), 4) and ds.last_close.shape == (
        len(ds),
    )
    assert ds[-1][1].shape == (4, 1)
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_windows_equal_pipeline_rows_and_are_time_aligned(
    dm: SSSDDataModule, candles: pd.DataFrame, cfg: SSSDConfig
) -> None:
    ds = dm.train_dataset
    assert ds is not None
    frames, _, _ = unified_feature_pipeline(
        candles, cfg, "multi_timeframe", standardizer=dm.standardizer
    )
    assert isinstance(frames, dict)
    rng = np.random.default_rng(5)
    for i in rng.choice(len(ds), 60, replace=False):
        t = ds.decision_times[i]
        feats, _, _ = ds[i]
        opens = ds.window_open_times(i)
        for tf, x in feats.items():
            fr = frames[tf]
            tf_delta = pd.Timedelta(minutes=TF_MIN[tf])
            closed = fr.index[fr.index + tf_delta <= t]
            # the window ends with the last bar that closed at or before t ...
            assert opens[tf][-1] == closed[-1]
            assert opens[tf][-1] + tf_delta <= t
            # ... and the next bar of that timeframe would close after t
            later = fr.index[fr.index > opens[tf][-1]]
            if len(later):
                assert later[0] + tf_delta > t
            pd.testing.assert_index_equal(opens[tf], closed[-LOOKBACKS[tf] :], check_names=False)
            np.testing.assert_array_equal(x.numpy(), fr.loc[opens[tf]].to_numpy())
        assert opens["5m"][-1] + pd.Timedelta(minutes=5) == t  # t is the close of a 5m bar


def test_collate_fn_batches(dm: SSSDDataModule) -> None:
    ds = dm.train_dataset
    assert ds is not None
    feats, targets, hidx = collate_fn([ds[i] for i in range(5)])
    assert {tf: tuple(x.shape) for tf, x in feats.items()} == {
        tf: (5, n, 28) for tf, n in LOOKBACKS.items()
    }
    assert targets.shape == (5, 4, 1) and hidx.shape == (5, 4) and hidx.dtype == torch.long
    torch.testing.assert_close(feats["1h"][3], ds[3][0]["1h"])
    with pytest.raises(ValueError):
        collate_fn([])
    # the batched fetch used by DataLoader gives exactly the same batch
    idx = [7, 3, 900, -1]
    direct = collate_fn([ds[i] for i in idx])
    fast = ds.get_batch(idx)
    pre = ds.__getitems__(idx)
    assert collate_fn(pre) is pre.batch
    from torch.utils.data import default_collate

    for got in (fast, pre.batch, default_collate(pre)):
        for tf in LOOKBACKS:
            assert torch.equal(got[0][tf], direct[0][tf])
        assert torch.equal(got[1], direct[1]) and torch.equal(got[2], direct[2])
    with pytest.raises(IndexError):
        ds.get_batch([len(ds)])


def test_worker_processes_give_the_same_batches(dm: SSSDDataModule) -> None:
    ds = dm.val_dataset
    assert ds is not None
    loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=1, collate_fn=collate_fn)
    feats, targets, _ = next(iter(loader))
    ref = collate_fn([ds[i] for i in range(8)])
    assert torch.equal(feats["4h"], ref[0]["4h"]) and torch.equal(targets, ref[1])


def test_splits_embargo_and_boundaries(dm: SSSDDataModule, cfg: SSSDConfig) -> None:
    train, val, test = dm.train_dataset, dm.val_dataset, dm.test_dataset
    assert train is not None and val is not None and test is not None
    embargo = pd.Timedelta(minutes=cfg.data.effective_embargo_minutes)
    assert embargo >= pd.Timedelta(minutes=240 + 2500)
    ends = {"train": "2019-02-11", "val": "2019-03-01", "test": "2019-04-01"}
    starts = {"val": "2019-02-11", "test": "2019-03-01"}
    for name, ds in (("train", train), ("val", val), ("test", test)):
        end = pd.Timestamp(ends[name], tz="UTC")
        assert len(ds) > 1000
        assert (ds.decision_times + pd.Timedelta(minutes=240)).max() <= end
        assert np.isfinite(ds.log_returns).all()
        if name in starts:
            start = pd.Timestamp(starts[name], tz="UTC")
            assert ds.decision_times.min() >= start + embargo
            first_bars = [ds.window_open_times(i) for i in (0, len(ds) // 2)]
            assert all(min(o[0] for o in w.values()) >= start for w in first_bars)
            assert ds.dropped[WINDOW_CROSSES_SPLIT_START] > 0 and EMBARGO in ds.dropped
    assert (
        train.decision_times.max()
        < val.decision_times.min()
        < val.decision_times.max()
        < test.decision_times.min()
    )
    assert train.dropped[INSUFFICIENT_HISTORY] > 0
    assert dm.dropped["val"] == val.dropped
    # the module's standardizer is the one fitted on the training split only
    raw = multi_timeframe_features(dm._candles, cfg).raw  # type: ignore[arg-type]
    assert dm.standardizer.equals(fit_standardizer(raw, cfg))
    assert dm.feature_names == train.feature_names


def test_loaders_deterministic_and_seeded(
    dm: SSSDDataModule, candles: pd.DataFrame, cfg: SSSDConfig
) -> None:
    def first_targets(loader: torch.utils.data.DataLoader, n: int = 3) -> list[torch.Tensor]:
        out = []
        for k, (_, targets, _) in enumerate(loader):
            out.append(targets)
            if k + 1 == n:
                break
        return out

    val_a, val_b = first_targets(dm.val_dataloader()), first_targets(dm.val_dataloader())
    assert all(torch.equal(a, b) for a, b in zip(val_a, val_b, strict=True))
    val_ds = dm.val_dataset
    assert val_ds is not None
    torch.testing.assert_close(
        val_a[0][:, :, 0], torch.from_numpy(val_ds.targets[:16]), equal_nan=True
    )
    loader = dm.train_dataloader()
    assert loader.batch_size == 16 and loader.num_workers == cfg.data.num_workers
    tr_a, tr_b = first_targets(loader), first_targets(dm.train_dataloader())
    assert all(torch.equal(a, b) for a, b in zip(tr_a, tr_b, strict=True))
    train_ds = dm.train_dataset
    assert train_ds is not None
    assert not torch.equal(tr_a[0][:, :, 0], torch.from_numpy(train_ds.targets[:16]))  # shuffled
    other = SSSDDataModule(config=cfg.with_overrides(["seed=7"]), candles=candles)
    assert not torch.equal(first_targets(other.train_dataloader(), 1)[0], tr_a[0])


def test_too_little_history_says_needed_and_given(
    candles: pd.DataFrame, cfg: SSSDConfig, dm: SSSDDataModule
) -> None:
    warm = feature_warmup(cfg.features)
    short = candles[candles.index < pd.Timestamp("2019-01-12", tz="UTC")]
    with pytest.raises(DataError) as err:
        SSSDTimeSeriesDataset.from_candles(short, cfg, dm.standardizer)
    msg = str(err.value)
    assert f"4h needs {warm + 10} complete bars ({warm} warm-up + 10 lookback)" in msg
    counts = short.resample("4h").size()
    complete = counts[
        (counts > 0)
        & (counts.index + pd.Timedelta(hours=4) <= short.index[-1] + pd.Timedelta(minutes=1))
    ]
    assert (
        f"4h needs {warm + 10} complete bars ({warm} warm-up + 10 lookback) and the candles give {len(complete)}"
        in msg
    )
    assert len(complete) < warm + 10 and "too little history" in msg
    # an explicit decision time too early for its windows
    early = pd.Timestamp("2019-01-15 10:00", tz="UTC")
    with pytest.raises(
        DataError,
        match=rf"before decision time 2019-01-15 10:00.*4h needs {warm + 10} complete bars .* give \d+",
    ):
        SSSDTimeSeriesDataset.from_candles(candles, cfg, dm.standardizer, decision_times=[early])
    with pytest.raises(DataError, match="not the close of a 5m bar"):
        SSSDTimeSeriesDataset.from_candles(
            candles,
            cfg,
            dm.standardizer,
            decision_times=[pd.Timestamp("2019-02-05 10:02", tz="UTC")],
        )
    with pytest.raises(TypeError, match="fitted Standardizer"):
        SSSDTimeSeriesDataset.from_candles(candles, cfg, None)  # type: ignore[arg-type]


def test_inference_mode_keeps_unknown_future(
    candles: pd.DataFrame, cfg: SSSDConfig, dm: SSSDDataModule
) -> None:
    recent = candles[candles.index >= pd.Timestamp("2019-02-15", tz="UTC")]
    ds = SSSDTimeSeriesDataset.from_candles(recent, cfg, dm.standardizer, require_targets=False)
    last_close = (recent.index[-1] + pd.Timedelta(minutes=1)).floor("5min")
    assert ds.decision_times[-1] == last_close
    assert np.isnan(ds.log_returns[-1]).all()
    assert torch.isnan(ds[-1][1]).all()
    assert ds.last_close[-1] == recent.close.iloc[-1]
    trained = SSSDTimeSeriesDataset.from_candles(recent, cfg, dm.standardizer)
    assert trained.decision_times[-1] <= last_close - pd.Timedelta(minutes=240)
    strided = SSSDTimeSeriesDataset.from_candles(
        recent, cfg.with_overrides(["data.decision_stride=6"]), dm.standardizer
    )
    assert (strided.decision_times.minute % 30 == 0).all()
    assert set(strided.decision_times) <= set(trained.decision_times)
    # one explicit decision time = what an inference call uses
    t = ds.decision_times[len(ds) // 2]
    one = SSSDTimeSeriesDataset.from_candles(
        recent, cfg, dm.standardizer, decision_times=[t], require_targets=False
    )
    i = int(np.flatnonzero(ds.decision_times == t)[0])
    for tf in LOOKBACKS:
        assert torch.equal(one[0][0][tf], ds[i][0][tf])


def test_datamodule_reads_the_candle_store(
    tmp_path: Path, candles: pd.DataFrame, cfg: SSSDConfig, dm: SSSDDataModule
) -> None:
    from forex_diffusion.data.store import CandleStore

    CandleStore(tmp_path).write("EURUSD", candles)
    from_store = SSSDDataModule(data_path=tmp_path, config=cfg)
    from_store.setup()
    assert from_store.standardizer.equals(dm.standardizer)
    for name in ("train_dataset", "val_dataset", "test_dataset"):
        a, b = getattr(from_store, name), getattr(dm, name)
        assert a.decision_times.equals(b.decision_times)
        np.testing.assert_array_equal(a.targets, b.targets)


def test_public_api_alias_of_spec_section_2() -> None:
    """SPEC §2's import path names the same objects as their homes."""
    from forex_diffusion.data import sssd_dataset

    assert sssd_dataset.SSSDDataModule is SSSDDataModule
    assert sssd_dataset.SSSDTimeSeriesDataset is SSSDTimeSeriesDataset
    assert sssd_dataset.collate_fn is collate_fn
