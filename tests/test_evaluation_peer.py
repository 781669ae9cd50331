"""The learned peer (LightGBM quantile regression) as a forecaster row of the evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forex_diffusion.data.candles import validate_candles
from forex_diffusion.data.resample import resample_ohlc
from forex_diffusion.evaluation.peers import peer_features
from forex_diffusion.evaluation.walk_forward import evaluate
from walk_forward_utils import EVAL_END, EVAL_START, eval_config, real_eurusd, write_store


@pytest.fixture(scope="module")
def peer_run(fx_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("peer")
    write_store(root / "store", real_eurusd(fx_dir))
    cfg = eval_config(
        root,
        [
            "evaluation.learned_peer=true",
            "evaluation.peers=[lightgbm]",  # NHITS: tests/test_evaluation_nhits.py
            "evaluation.peer_samples=100",
        ],
    )
    return evaluate(cfg, "EURUSD", EVAL_START, EVAL_END, baselines_only=True, record=False)


def test_peer_is_a_scored_row_that_competes_for_best_baseline(peer_run) -> None:
    s = peer_run.summary
    assert "lightgbm" in s.forecasters and "lightgbm" not in s.baselines
    f = peer_run.forecasts["lightgbm"]
    assert f.samples is not None and np.isfinite(f.samples).all()
    for h in s.horizons:
        m = s.get("lightgbm", h)
        assert np.isfinite(m.crps) and 0.3 < m.coverage["0.9"] <= 1.0
        best = s.verdict(h).best_baseline
        assert best in (*s.baselines, "lightgbm")  # the learned peer competes (issue 16)
        lowest = min((*s.baselines, "lightgbm"), key=lambda n: s.get(n, h).crps)
        assert best == lowest
        assert (m.dm is None) if best == "lightgbm" else (m.dm.against == best)
    assert any(n.startswith("Learned peer: LightGBM quantile regression") for n in s.notes)
    assert "LightGBM quantile peer" in peer_run.files.report.read_text()


def test_peer_features_are_causal(fx_dir: Path) -> None:
    base = validate_candles(real_eurusd(fx_dir))
    bars = resample_ohlc(base, "5m")
    times = pd.DatetimeIndex(bars.index[-800:-700:10] + pd.Timedelta(minutes=5))
    x = peer_features(base, bars, times)
    t = times[5]
    later = base.copy()
    after = later.index >= t
    later.loc[after, ["open", "high", "low", "close"]] *= 1.05
    y = peer_features(later, resample_ohlc(later, "5m"), times)
    pd.testing.assert_frame_equal(x.iloc[:6], y.iloc[:6])
    assert not x.iloc[6:].equals(y.iloc[6:])
    assert np.isfinite(x.to_numpy()).all()
