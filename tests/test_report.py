"""Summaries and the written report (baselines only and with a model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forex_diffusion.config.sssd_config import EvaluationConfig
from forex_diffusion.evaluation.report import write_report
from forex_diffusion.evaluation.summary import (
    EvaluationSummary,
    fan_chart_data,
    summarize_forecasts,
)
from forex_diffusion.models.distribution import ForecastDistribution

HORIZONS = (5, 60)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def world() -> dict[str, object]:
    """Hourly decision times over three weeks with known-quality forecasters."""
    rng = np.random.default_rng(0)
    times = pd.date_range("2021-03-01 01:00", periods=500, freq="1h", tz="UTC")
    n, h = len(times), len(HORIZONS)
    sigma = np.array([2e-4, 8e-4])[None, :] * rng.uniform(0.5, 1.5, size=(n, 1))
    signal = sigma * rng.standard_normal((n, h))  # partly predictable component
    y = signal + sigma * rng.standard_normal((n, h))
    y[3, 1] = np.nan  # a gap: no target
    total = sigma * np.sqrt(2)
    zeros = np.zeros((n, h))
    forecasts = {
        "calibrated": ForecastDistribution.gaussian("calibrated", times, HORIZONS, zeros, total),
        "too_wide": ForecastDistribution.gaussian("too_wide", times, HORIZONS, zeros, 3 * total),
    }
    good = signal[..., None] + sigma[..., None] * rng.standard_normal((n, h, 64))
    bad = 4 * total[..., None] * rng.standard_normal((n, h, 64))
    forecasts["good_model"] = ForecastDistribution.from_samples("good_model", times, HORIZONS, good)
    forecasts["bad_model"] = ForecastDistribution.from_samples("bad_model", times, HORIZONS, bad)
    return {"times": times, "y": y, "forecasts": forecasts, "close": np.full(n, 1.1)}


def _summary(world: dict[str, object], model: str | None) -> EvaluationSummary:
    return summarize_forecasts(
        asset="EURUSD",
        forecasts=world["forecasts"],  # type: ignore[arg-type]
        baselines=["calibrated", "too_wide"],
        targets=world["y"],  # type: ignore[arg-type]
        last_close=world["close"],  # type: ignore[arg-type]
        pip_size=1e-4,
        cfg=EvaluationConfig(stride=12),
        model_name=model,
        labels={"calibrated": "RW calibrated", "too_wide": "RW too wide"},
        start="2021-03-01",
        end="2021-03-22",
    )


def _first_table(md: str) -> list[str]:
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
    return lines[start:end]


def _check_files(out: Path, fan: bool) -> dict[str, object]:
    for name in ("reliability.png", "pit_histogram.png", "crps_by_hour.png") + (
        ("fan_chart.png",) if fan else ()
    ):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5_000, name
    assert (out / "fan_chart.png").exists() == fan
    metrics = json.loads((out / "metrics.json").read_text())  # strict JSON: no NaN
    assert not list(out.glob(".*"))  # no temporary files left behind
    return metrics


def test_summary_numbers(world: dict[str, object]) -> None:
    s = _summary(world, "good_model")
    y = world["y"]
    assert isinstance(y, np.ndarray)
    forecasts = world["forecasts"]
    assert isinstance(forecasts, dict)
    for j, h in enumerate(HORIZONS):
        ok = np.isfinite(y[:, j])
        assert s.get("calibrated", h).n == ok.sum()
        for name in ("good_model", "calibrated", "too_wide"):
            expected = forecasts[name].crps(y)[ok, j].mean()
            assert s.get(name, h).crps == pytest.approx(expected)
        assert s.verdict(h).best_baseline == "calibrated"
        best = s.get("calibrated", h)
        assert best.dm is None and best.skill_vs_best == 0.0
        wide = s.get("too_wide", h)
        assert wide.skill_vs_best < 0 and wide.dm is not None and wide.dm.p_value < 0.01
        assert abs(best.coverage["0.9"] - 0.9) < 0.05
        assert wide.coverage["0.5"] > 0.9
        model = s.get("good_model", h)
        assert model.skill["calibrated"] == pytest.approx(1 - model.crps / best.crps)
        assert model.directional_accuracy > 0.6 and model.pt_pvalue < 0.01
        assert best.n_directional == 0 and np.isnan(best.pt_pvalue)  # zero median: no direction
        assert len(model.crps_by_hour) == 24 and sum(model.pit_histogram) == ok.sum()
    assert s.forecasters == ("good_model", "calibrated", "too_wide")
    # stride 12 (hourly): 60-minute forecasts do not overlap, so lag 0
    assert s.get("too_wide", 60).dm.lag == 0  # type: ignore[union-attr]


def test_report_baselines_only(world: dict[str, object], tmp_path: Path) -> None:
    s = _summary(world, None)
    files = write_report(tmp_path / "rep", s)
    md = files.report.read_text()
    assert "Baselines only" in md and "(model)" not in md
    table = _first_table(md)
    assert "CRPS" in table[0] and "Skill vs best baseline" in table[0] and "DM p" in table[0]
    assert len(table) == 2 + len(HORIZONS) * 2
    verdicts = [line for line in md.splitlines() if line.startswith("- ")]
    assert sum("no model was evaluated" in line for line in verdicts) == len(HORIZONS)
    metrics = _check_files(tmp_path / "rep", fan=False)
    assert metrics["model_name"] is None and metrics["forecasters"] == ["calibrated", "too_wide"]


def test_report_with_a_better_model(world: dict[str, object], tmp_path: Path) -> None:
    s = _summary(world, "good_model")
    forecasts = world["forecasts"]
    assert isinstance(forecasts, dict)
    fan = fan_chart_data(forecasts["good_model"], 60, world["close"], world["y"])  # type: ignore[arg-type]
    assert len(fan.target_times) == 7 * 24
    files = write_report(tmp_path / "rep", s, fan)
    md = files.report.read_text()
    table = _first_table(md)
    assert len(table) == 2 + len(HORIZONS) * 3
    assert "**good_model** (model)" in table[2]  # the model leads each horizon
    assert md.count("BEATS the best baseline, RW calibrated") == len(HORIZONS)
    metrics = _check_files(tmp_path / "rep", fan=True)
    assert metrics["model_name"] == "good_model"
    assert {m["forecaster"] for m in metrics["metrics"]} == {"good_model", "calibrated", "too_wide"}  # type: ignore[index]


def test_report_says_when_the_model_loses(world: dict[str, object], tmp_path: Path) -> None:
    s = _summary(world, "bad_model")
    assert all(v.outcome == "loses" for v in s.verdicts)
    md = write_report(tmp_path, s).report.read_text()
    assert md.count("LOSES to the best baseline") == len(HORIZONS)


def test_summary_validation(world: dict[str, object]) -> None:
    forecasts = world["forecasts"]
    assert isinstance(forecasts, dict)
    kwargs = dict(
        asset="X",
        targets=world["y"],
        last_close=world["close"],
        pip_size=1e-4,
        cfg=EvaluationConfig(),
    )
    with pytest.raises(ValueError, match="no forecasts"):
        summarize_forecasts(forecasts=forecasts, baselines=["nope"], **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one baseline"):
        summarize_forecasts(forecasts=forecasts, baselines=[], **kwargs)  # type: ignore[arg-type]
    shifted = forecasts["calibrated"].select(slice(1, None))
    with pytest.raises(ValueError):
        summarize_forecasts(
            forecasts={"calibrated": forecasts["calibrated"], "s": shifted},
            baselines=["calibrated", "s"],
            **kwargs,  # type: ignore[arg-type]
        )


def test_figures_draw_the_model_rows_and_the_best_baseline(
    world: dict[str, object], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every row stays in the tables; the per-horizon figures draw the model, its raw and
    adaptive rows and that horizon's best baseline (all rows without a model)."""
    from forex_diffusion.evaluation import report
    from forex_diffusion.evaluation.summary import ADAPTIVE, raw_key_of

    forecasts = dict(world["forecasts"])  # type: ignore[call-overload]
    raw = raw_key_of("good_model")
    forecasts[raw] = forecasts["bad_model"].renamed(raw)
    forecasts[ADAPTIVE] = forecasts["good_model"].renamed(ADAPTIVE)
    forecasts["pool"] = forecasts["good_model"].renamed("pool")
    s = summarize_forecasts(
        asset="EURUSD",
        forecasts=forecasts,
        baselines=["calibrated", "too_wide"],
        targets=world["y"],  # type: ignore[arg-type]
        last_close=world["close"],  # type: ignore[arg-type]
        pip_size=1e-4,
        cfg=EvaluationConfig(stride=12),
        model_name="good_model",
        others=[raw, ADAPTIVE, "pool"],
        labels={"calibrated": "RW calibrated", "too_wide": "RW too wide", "pool": "CRPS pool"},
        start="2021-03-01",
        end="2021-03-22",
    )
    assert len(s.forecasters) == 6
    for h in HORIZONS:
        best = s.verdict(h).best_baseline
        assert best in ("calibrated", "too_wide")
        assert s.figure_rows(h) == ("good_model", raw, ADAPTIVE, best)
    assert _summary(world, None).figure_rows(5) == ("calibrated", "too_wide")

    legends: list[list[str]] = []

    def keep_legends(fig: object, path: Path) -> None:
        for ax in fig.axes:  # type: ignore[attr-defined]
            legend = ax.get_legend()
            legends.append([t.get_text() for t in legend.get_texts()])

    monkeypatch.setattr(report, "_save", keep_legends)
    report.plot_pit(s, tmp_path / "pit.png")
    assert len(legends) == len(HORIZONS)
    for h, texts in zip(HORIZONS, legends, strict=True):
        assert "CRPS pool" not in texts
        assert len(texts) == 5  # four rows and the flat reference
        assert f"{s.labels[s.verdict(h).best_baseline]} (best baseline)" in texts
