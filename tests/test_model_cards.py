"""Model cards: the registry round trip, the verdicts and sentences, the fitted baselines' state."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from forex_diffusion.config.sssd_config import EvaluationConfig, FallbackConfig
from forex_diffusion.data.resample import resample_ohlc
from forex_diffusion.data.synthetic import generate_synthetic_market
from forex_diffusion.errors import RegistryError
from forex_diffusion.inference.fallback import plan_serving
from forex_diffusion.models.baselines import baseline_from_state, baseline_state, build_baselines
from forex_diffusion.registry import CardHorizon, ModelCard, Registry

HORIZONS = (5, 15, 60, 240)


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return resample_ohlc(generate_synthetic_market("2019-01-01", "2019-02-02", seed=1), "5m")


def _card(
    model_id: int, baselines: dict[str, dict[str, object]], digest: str = "d" * 40
) -> ModelCard:
    entries = (
        CardHorizon(
            horizon=5, best_baseline="ewma", skill=0.0, dm_pvalue=0.9, verdict="level", n=500
        ),
        CardHorizon(
            horizon=15, best_baseline="ewma", skill=-0.008, dm_pvalue=0.01, verdict="worse", n=500
        ),
        CardHorizon(
            horizon=60,
            best_baseline="ewma_seasonal",
            skill=-0.036,
            dm_pvalue=0.002,
            verdict="worse",
            n=500,
            crps_model=4.4e-4,
            crps_baseline=4.25e-4,
            coverage90=0.88,
            coverage50=0.47,
            pool_weight=0.3,
        ),
        CardHorizon(
            horizon=240, best_baseline="garch", skill=0.02, dm_pvalue=0.03, verdict="better", n=500
        ),
    )
    return ModelCard(
        asset="EURUSD",
        model_id=model_id,
        model_name="m",
        weights_digest=digest,
        range_name="test range",
        window_start=datetime(2019, 1, 1, tzinfo=UTC),
        window_end=datetime(2020, 1, 1, tzinfo=UTC),
        significance=0.05,
        horizons=entries,
        baselines=baselines,
        n_decisions=500,
        report="/tmp/report.md",
    )


def _fitted(bars: pd.DataFrame) -> dict[str, dict[str, object]]:
    cfg = EvaluationConfig()
    train = bars[bars.index < pd.Timestamp("2019-01-21", tz="UTC")]
    return {b.name: baseline_state(b.fit(train)) for b in build_baselines(cfg)}


def test_card_round_trips_through_the_registry(bars: pd.DataFrame) -> None:
    with Registry("sqlite://") as reg:
        model = reg.register_model(
            "EURUSD",
            "m",
            architecture_config={"a": 1},
            training_config={},
            feature_config={},
            horizon_config={"horizons": list(HORIZONS)},
        )
        assert reg.model_card(model.id) is None
        card = _card(model.id, _fitted(bars))
        stored = reg.save_model_card(card)
        assert stored.created_at is not None
        read = reg.model_card(model.id)
        assert read == stored
        assert read.model_dump(exclude={"created_at"}) == card.model_dump(exclude={"created_at"})
        # a new evaluation replaces the card: one per model
        newer = card.model_copy(update={"range_name": "evaluation range", "n_decisions": 10})
        reg.save_model_card(newer)
        again = reg.model_card(model.id)
        assert again is not None and again.range_name == "evaluation range"
        assert again.n_decisions == 10
        # a card must name its model's asset
        with pytest.raises(RegistryError, match="belongs to EURUSD"):
            reg.save_model_card(card.model_copy(update={"asset": "GBPUSD"}))


def test_sentences_say_how_the_model_did() -> None:
    card = _card(1, {})
    assert card.dates() == "2019-01-01 → 2019-12-31"
    assert card.sentence(60) == (
        "on its test range (2019-01-01 → 2019-12-31) this model was 3.6 % worse than "
        "seasonal EWMA (DM p = 0.002) at 60 min"
    )
    assert "2.0 % better than GARCH" in card.sentence(240)
    assert "level with EWMA (0.0 % worse, DM p = 0.9)" in card.sentence(5)
    assert "was not evaluated at 30 min" in card.sentence(30)


def test_plan_falls_back_only_where_the_model_lost_significantly(bars: pd.DataFrame) -> None:
    card = _card(1, _fitted(bars))
    plan = plan_serving(card, HORIZONS, FallbackConfig(), "m", "d" * 40)
    assert plan.sources() == {
        5: "model",
        15: "fallback:ewma",
        60: "fallback:ewma_seasonal",
        240: "model",
    }
    assert plan.baselines_needed() == ("ewma", "ewma_seasonal")
    # a stricter alpha keeps the model where the loss is not significant at that level
    strict = plan_serving(card, HORIZONS, FallbackConfig(alpha=0.005), "m", "d" * 40)
    assert strict.sources()[15] == "model" and strict.sources()[60] == "fallback:ewma_seasonal"
    pool = plan_serving(card, HORIZONS, FallbackConfig(mode="pool"), "m", "d" * 40)
    # the pool needs the card's weight; without it the baseline is served
    assert pool.sources()[60] == "pool" and pool.sources()[15] == "fallback:ewma"
    off = plan_serving(card, HORIZONS, FallbackConfig(enabled=False), "m", "d" * 40)
    assert set(off.sources().values()) == {"model"}
    missing = plan_serving(_card(1, {}), HORIZONS, FallbackConfig(), "m", "d" * 40)
    assert set(missing.sources().values()) == {"model"}
    assert "lacks the fitted seasonal EWMA" in missing.horizons[2].statement


def test_baseline_state_round_trip_forecasts_the_same(bars: pd.DataFrame) -> None:
    states = _fitted(bars)
    assert set(states) == {"rolling", "ewma", "ewma_seasonal", "garch"}
    train = bars[bars.index < pd.Timestamp("2019-01-21", tz="UTC")]
    times = pd.date_range("2019-01-29 10:00", periods=6, freq="7h", tz="UTC")
    history = bars[bars.index < times[-1]]
    for b in build_baselines(EvaluationConfig()):
        b.fit(train)
        again = baseline_from_state(states[b.name])
        assert again.label == b.label
        want = b.forecast(history, times, HORIZONS)
        got = again.forecast(history, times, HORIZONS)
        assert got.kind == want.kind
        np.testing.assert_allclose(got.std(), want.std(), rtol=1e-12)
        np.testing.assert_allclose(got.quantile(0.9), want.quantile(0.9), rtol=1e-12)
    with pytest.raises(ValueError, match="unknown baseline"):
        baseline_from_state({"name": "arima", "train_var": 1.0})
    with pytest.raises(ValueError, match="incomplete"):
        baseline_from_state({"name": "ewma", "train_var": 1.0})
