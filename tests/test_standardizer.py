"""Standardizer: fitted on the training split alone, persisted exactly, strict about names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forex_diffusion.config.sssd_config import SSSDConfig, config_from_dict
from forex_diffusion.errors import CheckpointError, DataError
from forex_diffusion.features.standardizer import Standardizer
from forex_diffusion.features.unified_pipeline import (
    fit_standardizer,
    multi_timeframe_features,
    unified_feature_pipeline,
)
from fx_test_utils import load_fx
from fx_test_utils import make_config as make_2019_config

TF_MIN = {"5m": 5, "15m": 15, "1h": 60, "4h": 240}


def make_config(path: Path) -> SSSDConfig:
    return make_2019_config(
        path,
        train=("2019-01-07", "2019-02-10"),
        val=("2019-02-11", "2019-02-20"),
        test=("2019-02-21", "2019-03-10"),
    )


@pytest.fixture(scope="module")
def candles(fx_dir: Path) -> pd.DataFrame:
    return load_fx(fx_dir, "2019-01-01", "2019-03-10")


def test_stats_are_those_of_the_training_split_alone(
    candles: pd.DataFrame, default_config_path: Path
) -> None:
    cfg = make_config(default_config_path)
    train = cfg.data.splits.train.utc_range("train")
    start, end = train.start, train.end
    assert end == pd.Timestamp("2019-02-11", tz="UTC")
    raw = multi_timeframe_features(candles, cfg).raw
    std = fit_standardizer(raw, cfg)
    for tf, frame in raw.items():
        closes = frame.index + pd.Timedelta(minutes=TF_MIN[tf])
        rows = frame[(frame.index >= start) & (closes <= end)].to_numpy()
        st = std.stats[tf]
        assert st.n_rows == len(rows) > 10
        np.testing.assert_allclose(st.mean, rows.mean(axis=0), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(
            st.std, np.where(rows.std(axis=0) > 0, rows.std(axis=0), 1.0), rtol=1e-12
        )
    # candles truncated at the end of the training split give bit-identical statistics
    alone = candles[candles.index < end]
    raw_alone = multi_timeframe_features(alone, cfg).raw
    assert fit_standardizer(raw_alone, cfg).equals(std)
    # and replacing everything after the split by something else changes nothing
    wild = candles.copy()
    after = wild.index >= end
    wild.loc[after, ["open", "high", "low", "close"]] *= 1.5
    _, std_wild, _ = unified_feature_pipeline(wild, cfg, "multi_timeframe")
    assert std_wild.equals(std)


def test_round_trip_json_and_file(
    candles: pd.DataFrame, default_config_path: Path, tmp_path: Path
) -> None:
    cfg = make_config(default_config_path)
    frames, std, _ = unified_feature_pipeline(candles, cfg, "multi_timeframe")
    d = std.to_dict()
    text = json.dumps(d)  # JSON-able
    back = Standardizer.from_dict(json.loads(text))
    assert back.equals(std) and back.fit_end == std.fit_end and back.version == 1
    path = std.save(tmp_path / "sub" / "standardizer.json")
    loaded = Standardizer.load(path)
    assert loaded.equals(std)
    assert loaded.feature_names("1h") == tuple(frames["1h"].columns)
    raw = multi_timeframe_features(candles, cfg).raw
    pd.testing.assert_frame_equal(loaded.transform_frame("4h", raw["4h"]), frames["4h"])


def test_refuses_other_feature_names(candles: pd.DataFrame, default_config_path: Path) -> None:
    cfg = make_config(default_config_path)
    raw = multi_timeframe_features(candles, cfg).raw
    std = fit_standardizer(raw, cfg)
    frame = raw["1h"]
    with pytest.raises(DataError, match=r"missing \['rsi_14'\], extra \[\]"):
        std.transform_frame("1h", frame.drop(columns=["rsi_14"]))
    with pytest.raises(DataError, match=r"missing \[\], extra \['foo'\]"):
        std.transform_frame("1h", frame.assign(foo=1.0))
    with pytest.raises(DataError, match="missing \\['atr_14'\\], extra \\['atr_20'\\]"):
        std.transform_frame("1h", frame.rename(columns={"atr_14": "atr_20"}))
    with pytest.raises(DataError, match="no statistics for timeframe '1d'"):
        std.transform_frame("1d", frame)
    # the same names in another order are put back in the fitted order
    shuffled = frame[list(reversed(frame.columns))]
    pd.testing.assert_frame_equal(
        std.transform_frame("1h", shuffled), std.transform_frame("1h", frame)
    )
    # the pipeline refuses a standardizer fitted with another feature list
    data = cfg.to_dict()
    data["features"]["names"] = [n for n in data["features"]["names"] if n != "macd"]
    with pytest.raises(DataError, match="missing \\['macd', 'macd_signal'\\]"):
        unified_feature_pipeline(candles, config_from_dict(data), "sequence", standardizer=std)


def test_malformed_dicts_are_checkpoint_errors() -> None:
    frame = pd.DataFrame(
        {"a": [1.0, 2.0, 3.0], "b": [5.0, 5.0, 5.0]},
        index=pd.date_range("2020-01-06", periods=3, freq="5min", tz="UTC"),
    )
    std = Standardizer.fit({"5m": frame})
    assert std.stats["5m"].std[1] == 1.0  # constant column: unit std, no division by zero
    np.testing.assert_allclose(std.transform_frame("5m", frame)["b"].to_numpy(), 0.0)
    good = std.to_dict()
    with pytest.raises(CheckpointError, match="not a forex_diffusion standardizer"):
        Standardizer.from_dict({"timeframes": {}})
    with pytest.raises(CheckpointError, match="version 99"):
        Standardizer.from_dict({**good, "version": 99})
    bad = json.loads(json.dumps(good))
    bad["timeframes"]["5m"]["mean"] = [0.0]
    with pytest.raises(CheckpointError, match="malformed"):
        Standardizer.from_dict(bad)
    bad = json.loads(json.dumps(good))
    bad["timeframes"]["5m"]["std"] = [1.0, 0.0]
    with pytest.raises(CheckpointError, match="non-positive std"):
        Standardizer.from_dict(bad)
    with pytest.raises(CheckpointError, match="not found"):
        Standardizer.load("/nonexistent/standardizer.json")
    with pytest.raises(DataError, match="only 0"):
        Standardizer.fit({"5m": frame}, start="2021-01-01")
