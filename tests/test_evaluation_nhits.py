"""The NHITS peer as a forecaster row of the evaluation, fitted on the tuning range only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forex_diffusion.evaluation.peer_nhits import nhits_available
from forex_diffusion.evaluation.walk_forward import EvaluationResult, _nhits_skip_note, evaluate
from walk_forward_utils import EVAL_END, EVAL_START, eval_config, real_eurusd, write_store

needs_nhits = pytest.mark.skipif(
    not nhits_available(),
    reason="neuralforecast is not installed (the optional `peers` extra)",
)

NHITS_ONLY = (
    "evaluation.learned_peer=true",
    "evaluation.peers=[nhits]",
    "evaluation.nhits_max_steps=40",
    "evaluation.peer_samples=50",
)
# candles from here on are perturbed in the second run: inside the evaluated range, after the
# tuning (training) range 2019-01-01 .. 2019-01-20
PERTURB_FROM = pd.Timestamp("2019-01-30 15:00", tz="UTC")


def _run(root: Path, candles: pd.DataFrame) -> EvaluationResult:
    write_store(root / "store", candles)
    cfg = eval_config(root, NHITS_ONLY)
    return evaluate(cfg, "EURUSD", EVAL_START, EVAL_END, baselines_only=True, record=False)


@pytest.fixture(scope="module")
def runs(fx_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    candles = real_eurusd(fx_dir)
    later = candles.copy()
    later.loc[later.index >= PERTURB_FROM, ["open", "high", "low", "close"]] *= 1.05
    return (
        _run(tmp_path_factory.mktemp("nhits"), candles),
        _run(tmp_path_factory.mktemp("nhits_later"), later),
    )


@pytest.mark.slow  # with the next test: two evaluations, each training NHITS on CPU
@needs_nhits
def test_nhits_is_a_scored_row_that_competes_for_best_baseline(runs) -> None:
    run = runs[0]
    s = run.summary
    assert "nhits" in s.forecasters and "nhits" not in s.baselines
    assert "lightgbm" not in s.forecasters  # evaluation.peers chooses the peers
    f = run.forecasts["nhits"]
    assert f.samples is not None and np.isfinite(f.samples).all()
    assert np.all(np.diff(f.samples, axis=2) >= 0)  # monotone quantiles
    for h in s.horizons:
        m = s.get("nhits", h)
        assert np.isfinite(m.crps) and 0.3 < m.coverage["0.9"] <= 1.0
        best = s.verdict(h).best_baseline
        lowest = min((*s.baselines, "nhits"), key=lambda n: s.get(n, h).crps)
        assert best == lowest  # the peer competes for best baseline (issue 16)
        assert (m.dm is None) if best == "nhits" else (m.dm.against == best)
    assert any(n.startswith("Learned peer: NeuralForecast NHITS") for n in s.notes)
    assert "NHITS Student-t peer" in run.files.report.read_text()


@pytest.mark.slow
@needs_nhits
def test_nhits_is_fitted_before_the_evaluated_range_and_forecasts_causally(runs) -> None:
    """Candles perturbed after the training range (from PERTURB_FROM on): forecasts at the
    decision times before that are bit-identical, so neither the fit nor the inputs saw them."""
    a, b = runs[0].forecasts["nhits"], runs[1].forecasts["nhits"]
    assert a.samples is not None and b.samples is not None
    before = runs[0].decision_times < PERTURB_FROM
    assert before.sum() > 10 and (~before).sum() > 10
    np.testing.assert_array_equal(runs[0].decision_times, runs[1].decision_times)
    np.testing.assert_array_equal(a.samples[before], b.samples[before])
    assert not np.allclose(a.samples[~before], b.samples[~before])


def test_without_the_extra_the_report_says_the_row_was_skipped() -> None:
    note = _nhits_skip_note((5, 15), installed=False)
    assert note is not None and "neuralforecast is not installed" in note
    assert "forex-diffusion[peers]" in note
    assert _nhits_skip_note((5, 15), installed=True) is None
    assert "multiple of 5" in str(_nhits_skip_note((7, 15), installed=True))
