"""Walk-forward evaluation on real EURUSD: baselines only and with a tiny trained SSSD model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from forex_diffusion.calibration.conformal import AdaptiveConformal, adaptive_conformal_samples
from forex_diffusion.errors import ConfigError, DataError
from forex_diffusion.evaluation.model_forecast import build_model_inputs, sssd_forecast
from forex_diffusion.evaluation.ranges import (
    check_unseen,
    choose_tuning_range,
    evaluation_range,
)
from forex_diffusion.evaluation.walk_forward import (
    ADAPTIVE,
    EvaluationResult,
    evaluate,
    summary_text,
)
from forex_diffusion.inference.sssd_inference import (
    load_sssd_inference_service,
    noise_base,
    row_generators,
)
from forex_diffusion.registry.repository import Registry
from forex_diffusion.timeframes import UtcRange
from walk_forward_utils import (
    EVAL_END,
    EVAL_START,
    HOLE,
    MODEL_NAME,
    eval_config,
    expected_targets,
    real_eurusd,
    train_tiny_model,
    write_store,
)

HORIZONS = (5, 15, 60, 240)
BASELINES = ("rolling", "ewma", "ewma_seasonal", "garch")
UTC = "UTC"


@pytest.fixture(scope="module")
def candles(fx_dir: Path) -> pd.DataFrame:
    return real_eurusd(fx_dir)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, candles: pd.DataFrame) -> Path:
    base = tmp_path_factory.mktemp("walk_forward")
    write_store(base / "store", candles)
    return base


@pytest.fixture(scope="module")
def registry(root: Path) -> Registry:
    return Registry(f"sqlite:///{root / 'registry.db'}")


@pytest.fixture(scope="module")
def baselines_run(root: Path, registry: Registry) -> EvaluationResult:
    return evaluate(
        eval_config(root),
        "eurusd",
        EVAL_START,
        EVAL_END,
        baselines_only=True,
        out_dir=root / "reports" / "baselines",
        registry=registry,
        progress=False,
        stride=12,  # hourly: the tests below check the on-the-hour grid
    )


@pytest.fixture(scope="module")
def model_run(root: Path, registry: Registry, candles: pd.DataFrame) -> EvaluationResult:
    config = eval_config(root, ["evaluation.adaptive_conformal=true"])
    train_tiny_model(config, candles, registry)
    return evaluate(
        config,
        "EURUSD",
        EVAL_START,
        EVAL_END,
        model_name=MODEL_NAME,
        num_samples=16,
        out_dir=root / "reports" / "model",
        registry=registry,
        progress=False,
        stride=12,  # the grid of baselines_run, with which test_model_evaluation compares
    )


# --------------------------------------------------------------------------- ranges


def test_evaluation_range_end_date_is_inclusive() -> None:
    r = evaluation_range("2023-07-01", "2023-12-31")
    assert r.start == pd.Timestamp("2023-07-01", tz=UTC)
    assert r.end == pd.Timestamp("2024-01-01", tz=UTC)
    assert r.label() == "2023-07-01 → 2023-12-31"
    timed = evaluation_range("2023-07-01", "2023-07-03 12:00")
    assert timed.end == pd.Timestamp("2023-07-03 12:00", tz=UTC)
    with pytest.raises(ConfigError, match="not after start"):
        evaluation_range("2023-07-02", "2023-07-01 00:00")
    with pytest.raises(ConfigError, match="YYYY-MM-DD"):
        evaluation_range("yesterday", "2023-07-01")


def test_unseen_check_names_both_ranges(root: Path) -> None:
    cfg = eval_config(root)  # train 2019-01-01..01-20, val 01-21..01-25
    check_unseen(evaluation_range("2019-01-26", "2019-02-03"), cfg, 240, "m")  # after val: fine
    check_unseen(evaluation_range("2018-12-01", "2018-12-30"), cfg, 240, "m")  # before: fine
    for start, end in [("2019-01-24", "2019-02-03"), ("2019-01-10", "2019-01-12")]:
        with pytest.raises(ConfigError) as exc:
            check_unseen(evaluation_range(start, end), cfg, 240, "m")
        msg = str(exc.value)
        assert "training range 2019-01-01 → 2019-01-20" in msg
        assert "validation range 2019-01-21 → 2019-01-25" in msg
        assert "2019-01-26" in msg  # where an honest range may start
    # the last targets (t + 240 min) of a range ending on 2018-12-31 reach into training
    with pytest.raises(ConfigError, match="targets up to 2019-01-01 04:00"):
        check_unseen(evaluation_range("2018-12-01", "2018-12-31"), cfg, 240, "m")


def test_tuning_range_choice() -> None:
    train = UtcRange(
        "training range", pd.Timestamp("2019-01-01", tz=UTC), pd.Timestamp("2019-01-21", tz=UTC)
    )
    after = choose_tuning_range(
        evaluation_range("2019-01-21", "2019-01-31"), train, 30, "the config's"
    )
    assert after.source == "training range" and after.range == train
    inside = choose_tuning_range(
        evaluation_range("2019-01-14", "2019-01-31"), train, 30, "the config's"
    )
    assert inside.source == "window before start"
    assert inside.range.start == pd.Timestamp("2018-12-15", tz=UTC)
    assert inside.range.end == pd.Timestamp("2019-01-14", tz=UTC)
    assert "30 days before the evaluation start" in inside.reason


# --------------------------------------------------------------------------- baselines only


def test_baselines_only_decision_times_and_targets(
    baselines_run: EvaluationResult, candles: pd.DataFrame
) -> None:
    r = baselines_run
    assert r.model_name is None and r.checkpoint is None
    assert r.tuning.source == "training range"
    assert set(r.forecasts) == set(BASELINES)
    times = r.forecasts["garch"].times
    assert (times >= pd.Timestamp(EVAL_START, tz=UTC)).all()
    assert (times < pd.Timestamp("2019-02-04", tz=UTC)).all()
    assert (times.minute == 0).all()  # stride 12 = on the hour
    assert all(f.times.equals(times) for f in r.forecasts.values())
    # targets match an independent computation from the 1m bars
    np.testing.assert_allclose(r.targets, expected_targets(candles, times, HORIZONS), rtol=1e-12)
    # no scored target lies in the hole
    for h in HORIZONS:
        target_bar_close = times + pd.Timedelta(minutes=h)
        assert not ((target_bar_close > HOLE[0]) & (target_bar_close <= HOLE[1])).any(), h


def test_baselines_only_exclusions_are_counted(
    baselines_run: EvaluationResult, candles: pd.DataFrame
) -> None:
    ex = baselines_run.exclusions
    assert (
        ex.scored == len(baselines_run.forecasts["ewma"].times) == baselines_run.summary.n_decisions
    )
    assert ex.candidates == ex.scored + ex.missing_target + ex.undefined_baseline
    assert ex.insufficient_model_history == 0 and ex.undefined_baseline == 0
    # every hourly 5m close of the week, with its targets computed independently
    closes = (candles.index.floor("5min") + pd.Timedelta(minutes=5)).unique()
    grid = closes[
        (closes >= pd.Timestamp(EVAL_START, tz=UTC)) & (closes < pd.Timestamp("2019-02-04", tz=UTC))
    ]
    grid = grid[grid.minute == 0]
    expected = expected_targets(candles, grid, HORIZONS)
    assert ex.candidates == len(grid)
    assert ex.missing_target == int((~np.isfinite(expected).all(axis=1)).sum())
    assert ex.missing_by_horizon == {
        h: int((~np.isfinite(expected[:, j])).sum()) for j, h in enumerate(HORIZONS)
    }
    # the hole: 10:00 misses its 5/15/60 min targets, 07:00 and 08:00 their 240 min target
    assert ex.missing_by_horizon[5] >= 1 and ex.missing_by_horizon[240] >= 2
    scored = baselines_run.forecasts["ewma"].times
    for t in ("2019-01-30 07:00", "2019-01-30 08:00", "2019-01-30 10:00"):
        assert pd.Timestamp(t, tz=UTC) not in scored and pd.Timestamp(t, tz=UTC) in grid
    assert pd.Timestamp("2019-01-30 09:00", tz=UTC) in scored
    assert (
        f"{ex.scored} of {ex.candidates} decision times scored"
        in baselines_run.files.report.read_text()
    )


def test_baselines_only_metrics_report_and_registry(
    baselines_run: EvaluationResult, registry: Registry
) -> None:
    r = baselines_run
    s = r.summary
    for name in BASELINES:
        crps = r.forecasts[name].crps(r.targets)
        for j, h in enumerate(HORIZONS):
            assert s.get(name, h).crps == pytest.approx(crps[:, j].mean())
            assert s.get(name, h).n == r.exclusions.scored
    md = r.files.report.read_text()
    assert "Baselines only" in md and "(model)" not in md
    text = summary_text(r)
    assert text == summary_text(s) == r.text() and text.count("|") > 16 * 8
    assert all(line in md for line in text.splitlines() if line.startswith("|"))
    assert "Baselines tuned on the config's training range 2019-01-01 → 2019-01-20" in md
    assert md.startswith("# Evaluation: EURUSD, 2019-01-28 → 2019-02-03")
    for f in (r.files.reliability, r.files.pit_histogram, r.files.crps_by_hour, r.files.fan_chart):
        assert f is not None and f.read_bytes().startswith(b"\x89PNG")
    metrics = json.loads(r.files.metrics.read_text())
    assert metrics["model_name"] is None and metrics["n_decisions"] == r.exclusions.scored
    assert r.metric_rows == len(BASELINES) * len(HORIZONS)
    rows = [m for m in registry.latest_metrics("EURUSD") if m.model_id is None]
    assert {(m.method, m.horizon) for m in rows} == {(b, h) for b in BASELINES for h in HORIZONS}
    for m in rows:
        assert m.n_forecasts == r.exclusions.scored
        assert m.window_start == pd.Timestamp(EVAL_START, tz=UTC).to_pydatetime()
        assert m.metrics["crps"] == pytest.approx(s.get(m.method, m.horizon).crps)
        assert m.metrics["tuning"] == "training range"


def test_baselines_tuned_before_start_when_training_overlaps(root: Path) -> None:
    cfg = eval_config(root, ["evaluation.tuning_days=10"])
    r = evaluate(
        cfg, "EURUSD", "2019-01-14", "2019-01-18", baselines_only=True, stride=48,
        out_dir=root / "reports" / "overlap", record=False, progress=False,
    )  # fmt: skip
    assert r.tuning.source == "window before start"
    assert r.tuning.range.label() == "2019-01-04 → 2019-01-13"
    assert r.metric_rows == 0
    assert (r.forecasts["ewma"].times.hour % 4 == 0).all()  # stride 48 = every 4 hours
    md = r.files.report.read_text()
    assert "10 days before the evaluation start, 2019-01-04 → 2019-01-13" in md
    assert "training range 2019-01-01 → 2019-01-20 does not end before" in md


def test_bad_requests(root: Path) -> None:
    cfg = eval_config(root)
    with pytest.raises(ConfigError, match="exclude each other"):
        evaluate(
            cfg, "EURUSD", EVAL_START, EVAL_END, model_name="x", baselines_only=True, record=False
        )
    with pytest.raises(DataError, match=r"baseline tuning .*the store holds 2019-01"):
        evaluate(cfg, "EURUSD", "2018-06-01", "2018-06-07", baselines_only=True, record=False)


# --------------------------------------------------------------------------- with a model


def test_model_evaluation(model_run: EvaluationResult, baselines_run: EvaluationResult) -> None:
    r = model_run
    assert r.model_name == MODEL_NAME and r.checkpoint is not None and r.checkpoint.is_file()
    f = r.forecasts[MODEL_NAME]
    assert (
        f.kind == "samples"
        and f.samples is not None
        and f.samples.shape == (r.exclusions.scored, 4, 16)
    )
    assert np.isfinite(f.samples).all() and (f.std() > 0).all()
    # the model adds no exclusion here (full windows), so it is scored on the baselines' times
    assert r.exclusions.insufficient_model_history == 0
    assert f.times.equals(baselines_run.forecasts["ewma"].times)
    np.testing.assert_allclose(r.targets, baselines_run.targets)
    assert r.tuning.source == "training range"  # the model's own training range
    s = r.summary
    assert s.forecasters == (MODEL_NAME, ADAPTIVE, *BASELINES)
    for h in HORIZONS:
        m = s.get(MODEL_NAME, h)
        assert m.crps == pytest.approx(f.crps(r.targets)[:, HORIZONS.index(h)].mean())
        v = s.verdict(h)
        assert m.dm is not None and m.dm.against == v.best_baseline
        # the verdict follows from the numbers: best baseline by CRPS, skill, DM p, the level
        assert v.best_baseline == min(BASELINES, key=lambda b, h=h: s.get(b, h).crps)
        best = s.get(v.best_baseline, h)
        assert v.model_skill == pytest.approx(1 - m.crps / best.crps)
        assert v.dm_pvalue == pytest.approx(m.dm.p_value)
        significant = v.dm_pvalue < s.significance
        expected = (
            ("beats" if v.model_skill > 0 else "loses")
            if significant
            else "not significantly different"
        )
        assert v.outcome == expected, v.sentence
        assert expected.split()[0].upper() in v.sentence.upper()
    md = r.files.report.read_text()
    assert f"**{MODEL_NAME}** (model)" in md
    assert "validated on 2019-01-21 → 2019-01-25; 16 samples per forecast" in md
    assert r.text().count("| 5 min |") == 2 + len(BASELINES)


def test_the_adaptive_row_is_the_model_under_online_conformal_levels(
    model_run: EvaluationResult,
) -> None:
    """The ``adaptive`` row is the model's scored forecasts issued through adaptive conformal
    levels that only the outcomes known at each decision time have moved, per horizon, from the
    nominal levels (the same function the service uses), and the report says so."""
    r = model_run
    model, adaptive = r.forecasts[MODEL_NAME], r.forecasts[ADAPTIVE]
    assert model.samples is not None and adaptive.samples is not None
    assert adaptive.times.equals(model.times) and adaptive.horizons == model.horizons
    acfg = eval_config(Path("unused")).inference.adaptive_conformal
    aci = AdaptiveConformal(tuple(acfg.coverages), acfg.gamma)
    ns = model.times.as_unit("ns").asi8
    for j, h in enumerate(HORIZONS):
        expected, used = adaptive_conformal_samples(
            model.samples[:, j], r.targets[:, j], ns, h, aci, acfg.by_session, acfg.by_phase
        )
        np.testing.assert_allclose(adaptive.samples[:, j], expected)
        assert (used[0] == [1 - c for c in acfg.coverages]).all()  # nominal at the start
        assert not np.allclose(adaptive.samples[:, j], model.samples[:, j])  # they moved
    assert r.summary.others and ADAPTIVE in r.summary.others
    assert "adaptive conformal" in r.files.report.read_text()


def test_coverage_by_volatility_and_session(model_run: EvaluationResult) -> None:
    """evaluate writes the conditional-coverage table to report.md and metrics.json: every
    row, cell counts summing to the scored decision times, groups from the seasonal EWMA."""
    r = model_run
    s = r.summary
    assert r.decision_times is not None
    cond = s.coverage_conditioning
    assert cond is not None and cond.sigma_source == "ewma_seasonal"
    sigma = r.forecasts["ewma_seasonal"].std()
    for j, h in enumerate(HORIZONS):
        assert cond.cuts[h] == pytest.approx(tuple(np.quantile(sigma[:, j], [1 / 3, 2 / 3])))
        for name in s.forecasters:
            m = s.get(name, h)
            for dim in ("volatility", "session", "phase"):
                cells = [c for c in m.coverage_by_cell if c.level == 0.9 and c.dimension == dim]
                assert sum(c.n for c in cells) == m.n == r.exclusions.scored
                pooled = sum(c.n * c.coverage for c in cells if c.n) / m.n
                assert pooled == pytest.approx(m.coverage["0.9"])
    md = r.files.report.read_text()
    section = md[md.index("## Coverage by volatility tercile, trading session and phase") :]
    # the 90 % and 50 % tables by tercile and session, the 90 % one by phase of the hour
    assert section.count("| 60 min | n (decision times) |") == 3
    assert f"| 240 min | **{s.labels[MODEL_NAME]}** (model) |" in section
    best = s.verdict(240).best_baseline
    assert f"| 240 min | {s.labels[best]} (best baseline) |" in section
    metrics = json.loads(r.files.metrics.read_text())
    assert metrics["coverage_conditioning"]["sigma_source"] == "ewma_seasonal"
    for entry in metrics["metrics"]:
        assert len(entry["coverage_by_cell"]) == len(s.coverage_levels) * (3 + 4 + 12)


def test_model_rows_in_registry(model_run: EvaluationResult, registry: Registry) -> None:
    model = registry.get_model("EURUSD", MODEL_NAME)  # registered by training
    assert model_run.model_id == model.id
    rows = [m for m in registry.latest_metrics("EURUSD", MODEL_NAME) if m.model_id == model.id]
    methods = {(m.method, m.horizon) for m in rows}
    assert methods == {(method, h) for h in HORIZONS for method in ("sssd", ADAPTIVE)}
    rows = [m for m in rows if m.method == "sssd"]
    for m in rows:
        assert m.n_forecasts == model_run.exclusions.scored
        assert m.metrics["num_samples"] == 16
        assert m.metrics["crps"] == pytest.approx(model_run.summary.get(MODEL_NAME, m.horizon).crps)


def test_model_refuses_seen_ranges(
    model_run: EvaluationResult, root: Path, registry: Registry
) -> None:
    with pytest.raises(ConfigError) as exc:
        evaluate(
            eval_config(root), "EURUSD", "2019-01-24", "2019-01-31", model_name=MODEL_NAME,
            registry=registry, progress=False,
        )  # fmt: skip
    msg = str(exc.value)
    assert f"refusing to evaluate model '{MODEL_NAME}' on 2019-01-24 → 2019-01-31" in msg
    assert "training range 2019-01-01 → 2019-01-20" in msg
    assert "validation range 2019-01-21 → 2019-01-25" in msg


def test_sssd_forecast_is_the_model_output_in_log_returns(
    model_run: EvaluationResult, root: Path, registry: Registry, candles: pd.DataFrame
) -> None:
    """Batched forecasts = the model's scaled samples × the causal target scales, in order."""
    config = eval_config(root)
    service = load_sssd_inference_service(
        "EURUSD", model_name=MODEL_NAME, device="cpu", config=config, registry=registry
    )
    times = model_run.forecasts[MODEL_NAME].times[:10]
    inputs = build_model_inputs(candles, service.config, service, times)
    assert inputs.has_history.all() and inputs.dataset is not None
    ds = inputs.dataset
    assert ds.decision_times.equals(times)
    fc = sssd_forecast(service, ds, num_samples=6, batch_size=4, seed=3, name="m")
    base = noise_base(torch.Generator().manual_seed(3))
    expected = []
    for lo in range(0, len(ds), 4):  # the same batches, each time with its own noise stream
        idx = np.arange(lo, min(lo + 4, len(ds)))
        feats, _, _ = ds.get_batch(idx)
        icfg = service.config.inference
        gens = row_generators(base, ds.decision_ns[idx])
        out = service.model.inference_forward(
            feats, 6, icfg.sampler, icfg.steps, icfg.eta, generator=gens
        )
        expected.append(out.samples.double().numpy() * ds.scales[idx][:, :, None])
    np.testing.assert_allclose(fc.samples, np.concatenate(expected), rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(ds.log_returns, model_run.targets[:10], rtol=1e-12)


def test_the_adaptive_row_keeps_levels_per_session_and_phase_at_every_bar() -> None:
    """At every 5m bar the evaluation's adaptive row is ``adaptive_conformal_samples`` with the
    configured cells (per session and phase of the hour by default), which differ from levels
    per session alone when the full hour is more volatile."""
    from forex_diffusion.config.sssd_config import AdaptiveConformalConfig, EvaluationConfig
    from forex_diffusion.evaluation.walk_forward import ADAPTIVE, _add_adaptive
    from forex_diffusion.models.distribution import ForecastDistribution

    rng = np.random.default_rng(3)
    times = pd.date_range("2023-07-03", periods=6 * 288, freq="5min", tz="UTC")
    samples = rng.normal(size=(len(times), 1, 64))
    targets = rng.normal(size=(len(times), 1)) * np.where(times.minute == 0, 1.4, 0.9)[:, None]
    acfg = AdaptiveConformalConfig(gamma=0.05)
    assert acfg.by_session and acfg.by_phase  # the defaults
    forecasts = {"m": ForecastDistribution.from_samples("m", times, (5,), samples)}
    _add_adaptive(forecasts, {}, [], "m", targets, acfg, EvaluationConfig())
    got = forecasts[ADAPTIVE].samples
    assert got is not None
    ns = times.as_unit("ns").asi8
    expected = {
        by_phase: adaptive_conformal_samples(
            samples[:, 0],
            targets[:, 0],
            ns,
            5,
            AdaptiveConformal(tuple(acfg.coverages), acfg.gamma),
            True,
            by_phase,
        )[0]
        for by_phase in (False, True)
    }
    np.testing.assert_allclose(got[:, 0], expected[True])
    assert not np.allclose(expected[True], expected[False])
