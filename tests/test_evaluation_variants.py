"""Evaluation rows beside the model (its raw variant) and the one-line direction rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forex_diffusion.config.sssd_config import EvaluationConfig
from forex_diffusion.evaluation.direction_rules import direction_rule_signals, with_direction_rules
from forex_diffusion.evaluation.report import write_report
from forex_diffusion.evaluation.summary import summarize_forecasts
from forex_diffusion.models.distribution import ForecastDistribution

H = (5, 60)


def _world(n: int = 600) -> dict:
    rng = np.random.default_rng(0)
    times = pd.date_range("2021-03-01 01:00", periods=n, freq="h", tz="UTC")
    sigma = np.array([1e-4, 4e-4])
    y = rng.normal(0, sigma, (n, 2))
    good = rng.normal(0, 1, (n, 2, 200)) * sigma[None, :, None]
    narrow = 0.5 * good
    return {
        "times": times,
        "y": y,
        "m": ForecastDistribution.from_samples("m", times, H, good),
        "m (raw)": ForecastDistribution.from_samples("m (raw)", times, H, narrow),
        "wide": ForecastDistribution.gaussian(
            "wide", times, H, np.zeros((n, 2)), np.tile(3 * sigma, (n, 1))
        ),
    }


def test_variant_rows_are_scored_but_never_the_best_baseline(tmp_path: Path) -> None:
    w = _world()
    s = summarize_forecasts(
        asset="X", forecasts={k: w[k] for k in ("m", "m (raw)", "wide")}, baselines=["wide"],
        targets=w["y"], last_close=np.ones(len(w["times"])), pip_size=1e-4,
        cfg=EvaluationConfig(stride=12), model_name="m", others=["m (raw)"],
        labels={"m": "m (calibrated)"},
    )  # fmt: skip
    assert s.forecasters == ("m", "m (raw)", "wide")
    for h in H:
        assert s.verdict(h).best_baseline == "wide"  # the raw variant is not a baseline
        raw, cal = s.get("m (raw)", h), s.get("m", h)
        assert raw.coverage["0.9"] < 0.7 < 0.85 < cal.coverage["0.9"]
        assert raw.dm is not None and raw.dm.against == "wide"
    files = write_report(tmp_path, s, None)
    text = files.report.read_text()
    assert text.count("| 60 min |") >= 3 and "m (raw)" in text and "m (calibrated)" in text


def test_direction_rule_signals_match_a_loop() -> None:
    idx = pd.date_range("2021-03-01 00:00", periods=40, freq="5min", tz="UTC")
    idx = idx.delete([10, 11])  # a gap: the bar after it has no last return
    close = 1.1 + 1e-4 * np.sin(np.arange(len(idx)))
    bars = pd.DataFrame({"open": close, "high": close, "low": close, "close": close}, index=idx)
    times = idx[[3, 10, 20]] + pd.Timedelta(minutes=5)
    sig = direction_rule_signals(bars, times)
    for k, t in enumerate(times):
        i = idx.get_loc(t - pd.Timedelta(minutes=5))
        if idx[i] - idx[i - 1] != pd.Timedelta(minutes=5):
            assert np.isnan(sig["momentum"][k])
            continue
        r = np.log(close[i] / close[i - 1])
        assert sig["momentum"][k] == pytest.approx(r) and sig["reversal"][k] == pytest.approx(-r)
    assert np.isnan(sig["momentum"][1])  # times[1] closes the first bar after the gap


def test_report_says_when_the_models_direction_adds_nothing() -> None:
    w = _world()
    y = w["y"]
    s = summarize_forecasts(
        asset="X", forecasts={"m": w["m"], "wide": w["wide"]}, baselines=["wide"], targets=y,
        last_close=np.ones(len(y)), pip_size=1e-4, cfg=EvaluationConfig(stride=12),
        model_name="m",
    )  # fmt: skip
    perfect = {"reversal": -y[:, 0], "momentum": y[:, 0]}  # momentum knows the 5 min sign
    out = with_direction_rules(s, perfect, y)
    acc = out.diagnostics["direction_rules"]["5"]
    assert acc["momentum"] == pytest.approx(1.0) and acc["reversal"] == pytest.approx(0.0)
    note = next(n for n in out.notes if n.startswith("Direction at 5 min"))
    assert "adds nothing over the better rule" in note


def test_a_learned_peer_competes_for_best_baseline() -> None:
    """The verdicts compare the model with the best of the baselines and the learned peers."""
    w = _world()
    forecasts = {k: w[k] for k in ("m", "m (raw)", "wide")}
    common = dict(
        asset="X",
        forecasts=forecasts,
        baselines=["wide"],
        targets=w["y"],
        last_close=np.full(len(w["times"]), 1.1),
        pip_size=1e-4,
        cfg=EvaluationConfig(),
    )
    n = len(w["times"])  # a peer that forecasts the true law beats the too-wide baseline
    forecasts["peer"] = ForecastDistribution.gaussian(
        "peer", w["times"], H, np.zeros((n, 2)), np.tile(np.array([1e-4, 4e-4]), (n, 1))
    )
    as_peer = summarize_forecasts(**common, model_name="m (raw)", others=["peer"], peers=["peer"])
    as_row = summarize_forecasts(**common, model_name="m (raw)", others=["peer"])
    for h in H:
        assert as_peer.verdict(h).best_baseline == "peer"
        assert as_row.verdict(h).best_baseline == "wide"  # not a peer: only scored
        assert as_peer.get("m (raw)", h).dm.against == "peer"
        assert as_peer.get("peer", h).dm is None
