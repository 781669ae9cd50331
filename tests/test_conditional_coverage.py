"""Coverage within volatility terciles, trading sessions and phases of the hour (issue 16's "coverage that holds
where it matters"): the pure functions, the summary's one computation, report.md and
metrics.json."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from forex_diffusion.config.sssd_config import EvaluationConfig
from forex_diffusion.evaluation.conditional_coverage import (
    COVERAGE_TOLERANCE,
    PHASES,
    SESSIONS,
    TERCILES,
    conditional_coverage,
    coverage_groups,
    session_index,
    volatility_reference,
    volatility_terciles,
)
from forex_diffusion.evaluation.report import write_report
from forex_diffusion.evaluation.summary import EvaluationSummary, summarize_forecasts
from forex_diffusion.models.distribution import ForecastDistribution

H = (5, 60)
N = 9000


def _session(name: str) -> int:
    return [s.name for s in SESSIONS].index(name)


def test_sessions_partition_the_day_at_their_boundary_hours() -> None:
    covered = [h for s in SESSIONS for h in range(s.start_hour, s.end_hour)]
    assert sorted(covered) == list(range(24))  # every hour once
    hours = np.array([0, 6, 7, 12, 13, 20, 21, 23])
    expected = ["Asia", "Asia", "London", "London", "New York", "New York", "Late", "Late"]
    np.testing.assert_array_equal(session_index(hours), [_session(n) for n in expected])
    # a decision time is the close of a 5m bar: 06:55 is still Asia, 07:00 is London
    times = pd.DatetimeIndex(["2021-03-01 06:55", "2021-03-01 07:00"], tz="UTC")
    np.testing.assert_array_equal(session_index(times.hour.to_numpy()), [0, 1])
    with pytest.raises(ValueError, match="hours"):
        session_index(np.array([24]))


def test_terciles_split_at_the_third_quantiles_and_skip_nan() -> None:
    sigma = np.array([5.0, 1.0, np.nan, 3.0, 2.0, 6.0, 4.0])
    idx, cuts = volatility_terciles(sigma)
    finite = sigma[np.isfinite(sigma)]
    assert cuts == pytest.approx(tuple(np.quantile(finite, [1 / 3, 2 / 3])))
    np.testing.assert_array_equal(idx, [2, 0, -1, 1, 0, 2, 1])
    assert volatility_terciles(np.full(3, np.nan))[0].tolist() == [-1, -1, -1]
    assert volatility_reference(["rolling", "ewma", "ewma_seasonal"]) == "ewma_seasonal"
    assert volatility_reference(["garch", "ewma"]) == "ewma"
    assert volatility_reference(["garch"]) == "garch"


@pytest.fixture(scope="module")
def world() -> dict[str, object]:
    """Hourly decision times; the seasonal EWMA baseline knows the true σ (exact everywhere);
    the model's intervals are exact while σ is in its lower two thirds and 0.6 × too narrow
    above."""
    rng = np.random.default_rng(1)
    times = pd.date_range("2021-03-01 00:00", periods=N, freq="1h", tz="UTC")
    sigma = rng.uniform(1.0, 3.0, size=(N, 1)) * np.array([1e-4, 3e-4])  # (N, H)
    y = sigma * rng.standard_normal((N, len(H)))
    y[5, 1] = np.nan  # a missing target
    volatile = sigma > np.quantile(sigma, 2 / 3, axis=0)
    model_sigma = np.where(volatile, 0.6 * sigma, sigma)
    zeros = np.zeros_like(sigma)
    forecasts = {
        "model": ForecastDistribution.gaussian("model", times, H, zeros, model_sigma),
        "ewma_seasonal": ForecastDistribution.gaussian("ewma_seasonal", times, H, zeros, sigma),
        "rolling": ForecastDistribution.gaussian("rolling", times, H, zeros, 2 * sigma),
    }
    return {"times": times, "y": y, "forecasts": forecasts}


@pytest.fixture(scope="module")
def summary(world: dict[str, object]) -> EvaluationSummary:
    return summarize_forecasts(
        asset="EURUSD",
        forecasts=world["forecasts"],  # type: ignore[arg-type]
        baselines=["rolling", "ewma_seasonal"],
        targets=world["y"],  # type: ignore[arg-type]
        last_close=np.full(N, 1.1),
        pip_size=1e-4,
        cfg=EvaluationConfig(stride=12),
        model_name="model",
        labels={"ewma_seasonal": "RW, seasonal EWMA σ", "rolling": "RW, rolling σ"},
    )


def _cells(s: EvaluationSummary, name: str, h: int, level: float, dimension: str) -> dict:
    return {
        c.cell: c
        for c in s.get(name, h).coverage_by_cell
        if c.level == level and c.dimension == dimension
    }


def test_terciles_find_a_forecaster_too_narrow_in_volatile_periods(
    summary: EvaluationSummary,
) -> None:
    s = summary
    assert s.coverage_conditioning is not None
    assert s.coverage_conditioning.sigma_source == "ewma_seasonal"
    narrow = 2 * stats.norm.cdf(0.6 * stats.norm.ppf(0.95)) - 1  # the model's high-tercile 90 %
    for h in H:
        for level in (0.5, 0.9):
            model = _cells(s, "model", h, level, "volatility")
            base = _cells(s, "ewma_seasonal", h, level, "volatility")
            for t in ("low", "mid"):
                assert abs(model[t].coverage - level) < 4 * model[t].se
                assert not model[t].outside
            assert model["high"].outside
            assert model["high"].coverage < level - 0.1
            for t in TERCILES:
                assert abs(base[t].coverage - level) < 4 * base[t].se and not base[t].outside
        high = _cells(s, "model", h, 0.9, "volatility")["high"]
        assert high.coverage == pytest.approx(narrow, abs=4 * high.se)
        # calm sessions and volatile ones mix in every session: each is a bit low, none high
        sessions = _cells(s, "model", h, 0.9, "session")
        assert all(c.coverage < 0.9 for c in sessions.values())


def test_cell_counts_sum_to_the_scored_total_and_se_is_binomial(
    summary: EvaluationSummary,
) -> None:
    s = summary
    for h in H:
        for name in s.forecasters:
            m = s.get(name, h)
            assert m.n == N - (1 if h == 60 else 0)
            for level in (0.5, 0.8, 0.9, 0.95):
                for dim in ("volatility", "session", "phase"):
                    cells = _cells(s, name, h, level, dim)
                    assert sum(c.n for c in cells.values()) == m.n
                    pooled = sum(c.n * c.coverage for c in cells.values() if c.n) / m.n
                    assert pooled == pytest.approx(m.coverage[f"{level:g}"])
                    for c in (c for c in cells.values() if c.n):
                        assert c.se == pytest.approx(math.sqrt(level * (1 - level) / c.n))
                        assert c.outside == (abs(c.coverage - level) > COVERAGE_TOLERANCE)
                tercile_n = [c.n for c in _cells(s, name, h, level, "volatility").values()]
                assert max(tercile_n) - min(tercile_n) <= 1
            hours = pd.Series(s_times(h)).dt.hour
            sessions = _cells(s, name, h, 0.9, "session")
            assert sessions["Asia"].n == int(hours.between(0, 6).sum())
            assert sessions["Late"].n == int(hours.between(21, 23).sum())
            phases = _cells(s, name, h, 0.9, "phase")  # an hourly grid: all on the full hour
            assert list(phases) == list(PHASES) and phases[":00"].n == m.n
            assert all(c.n == 0 and math.isnan(c.coverage) for k, c in phases.items() if k != ":00")


def s_times(h: int) -> pd.DatetimeIndex:
    """The scored decision times of the world at horizon h."""
    times = pd.date_range("2021-03-01 00:00", periods=N, freq="1h", tz="UTC")
    return times.delete(5) if h == 60 else times


def test_groups_are_the_same_for_every_forecaster(world: dict[str, object]) -> None:
    times: pd.DatetimeIndex = world["times"]  # type: ignore[assignment]
    sigma = world["forecasts"]["ewma_seasonal"].std()[:, 0]  # type: ignore[index]
    groups = coverage_groups(sigma, times.hour.to_numpy(), times.minute.to_numpy())
    assert np.bincount(groups.tercile, minlength=3).tolist() == [N // 3] * 3
    assert groups.cuts[0] < groups.cuts[1]


def test_table_in_report_and_metrics_json(summary: EvaluationSummary, tmp_path: Path) -> None:
    files = write_report(tmp_path, summary, None)
    md = files.report.read_text()
    section = md[md.index("## Coverage by volatility tercile, trading session and phase") :]
    assert "the σ forecast of RW, seasonal EWMA σ for the horizon at t" in section
    assert "Asia 00–07, London 07–13, New York 13–21, Late 21–24" in section
    assert "### 90 % intervals" in section and "### 50 % intervals" in section
    header = next(line for line in section.splitlines() if line.startswith("| Horizon"))
    assert header.count("|") == 2 + 3 + len(SESSIONS) + 1
    by_phase = section[section.index("### 90 % intervals by phase of the hour") :]
    phase_header = next(line for line in by_phase.splitlines() if line.startswith("| Horizon"))
    assert [c.strip() for c in phase_header.split("|")[3:-1]] == list(PHASES)
    phase_n = next(
        line for line in by_phase.splitlines() if "| 5 min | n (decision times) |" in line
    )
    assert [c.strip() for c in phase_n.split("|")[3:-1]] == [str(N)] + ["0"] * 11
    assert "| 5 min | **model** (model) | " in by_phase and "n/a" in by_phase
    n_row = next(line for line in section.splitlines() if "| 5 min | n (decision times) |" in line)
    assert n_row.split("|")[3].strip() == str(N // 3)
    model_row = next(
        line for line in section.splitlines() if line.startswith("| 5 min | **model** (model) |")
    )
    cells = [c.strip() for c in model_row.split("|")[3:-1]]
    assert "⚠" not in cells[0] and "⚠" in cells[2]  # low tercile fine, high flagged
    data = json.loads(files.metrics.read_text())
    cond = data["coverage_conditioning"]
    assert cond["sigma_source"] == "ewma_seasonal" and cond["tolerance"] == COVERAGE_TOLERANCE
    assert cond["sessions"]["Late"] == [21, 24]
    assert len(cond["cuts"]["5"]) == 2
    entry = next(m for m in data["metrics"] if m["forecaster"] == "model" and m["horizon"] == 5)
    by_cell = {(c["dimension"], c["cell"], c["level"]): c for c in entry["coverage_by_cell"]}
    high = by_cell[("volatility", "high", 0.9)]
    assert high["outside"] is True and high["n"] == N // 3
    assert by_cell[("session", "New York", 0.5)]["n"] == int(
        pd.Series(s_times(5)).dt.hour.between(13, 20).sum()
    )


def test_the_session_of_one_decision_time_is_the_array_one() -> None:
    from forex_diffusion.sessions import session_of, session_of_ns

    times = np.arange(-3, 8 * 24 * 60, 7, dtype=np.int64) * 60_000_000_000  # every 7 min, 8 days
    assert [session_of(int(t)) for t in times] == session_of_ns(times).tolist()


def test_phase_cells_find_a_forecaster_too_narrow_on_the_full_hour() -> None:
    """Every 5m bar for 60 days; outcomes twice as volatile when t is on the full hour; the
    forecast's 90 % interval is that of N(0, 1) everywhere: too narrow at :00 only."""
    rng = np.random.default_rng(5)
    times = pd.date_range("2021-03-01", periods=60 * 288, freq="5min", tz="UTC")
    minutes = times.minute.to_numpy()
    y = rng.normal(0, np.where(minutes == 0, 2.0, 1.0))
    z = stats.norm.ppf(0.95)
    lo, hi = np.full(len(y), -z), np.full(len(y), z)
    groups = coverage_groups(np.ones(len(y)), times.hour.to_numpy(), minutes)
    cells = {
        c.cell: c
        for c in conditional_coverage(groups, {0.9: (lo, hi)}, y)
        if c.dimension == "phase"
    }
    assert list(cells) == list(PHASES)
    assert all(c.n == 60 * 24 for c in cells.values())
    full = cells[":00"]
    assert full.outside and full.coverage == pytest.approx(
        2 * stats.norm.cdf(z / 2) - 1, abs=4 * full.se
    )
    for name in PHASES[1:]:
        assert abs(cells[name].coverage - 0.9) < 4 * cells[name].se + 0.005, name
        assert cells[name].outside == (abs(cells[name].coverage - 0.9) > COVERAGE_TOLERANCE)
