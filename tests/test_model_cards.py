"""Model cards: the registry round trip (per model and asset), the verdicts and sentences, the
fitted baselines' state, the migration of cards stored per model only."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from forex_diffusion.config.sssd_config import EvaluationConfig, FallbackConfig
from forex_diffusion.data.resample import resample_ohlc
from forex_diffusion.data.synthetic import generate_synthetic_market
from forex_diffusion.errors import RegistryError
from forex_diffusion.inference.fallback import plan_serving
from forex_diffusion.models.baselines import baseline_from_state, baseline_state, build_baselines
from forex_diffusion.registry import CardHorizon, ModelCard, Registry
from forex_diffusion.registry.db import (
    create_registry_engine,
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)

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
        assert reg.model_card(model.id, "EURUSD") is None
        card = _card(model.id, _fitted(bars))
        stored = reg.save_model_card(card)
        assert stored.created_at is not None
        read = reg.model_card(model.id, "EURUSD")
        assert read == stored
        assert read.model_dump(exclude={"created_at"}) == card.model_dump(exclude={"created_at"})
        # a new evaluation replaces the card: one per model
        newer = card.model_copy(update={"range_name": "evaluation range", "n_decisions": 10})
        reg.save_model_card(newer)
        again = reg.model_card(model.id, "EURUSD")
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


def _register(reg: Registry, asset: str, name: str, assets: list[str] | None = None) -> int:
    return reg.register_model(
        asset,
        name,
        architecture_config={"a": 1, "assets": assets or []},
        training_config={},
        feature_config={},
        horizon_config={"horizons": list(HORIZONS)},
    ).id


def test_a_global_model_keeps_one_card_per_asset(bars: pd.DataFrame) -> None:
    """Cards, metric rows and inference logs of a global model are per served asset; a
    per-asset model still takes only its own asset's."""
    with Registry("sqlite://") as reg:
        gid = _register(reg, "GLOBAL", "g", ["EURUSD", "GBPUSD"])
        eid = _register(reg, "EURUSD", "m")
        base = _card(gid, _fitted(bars))
        eur = reg.save_model_card(base)
        gbp = reg.save_model_card(base.model_copy(update={"asset": "gbpusd", "n_decisions": 7}))
        jpy = reg.save_model_card(base.model_copy(update={"asset": "USDJPY", "n_decisions": 9}))
        assert (eur.asset, gbp.asset, jpy.asset) == ("EURUSD", "GBPUSD", "USDJPY")
        assert reg.model_card(gid, "EURUSD") == eur and reg.model_card(gid, "gbpusd") == gbp
        assert reg.model_card(gid, "USDJPY") == jpy  # an asset it serves unseen
        assert reg.model_card(gid, "AUDUSD") is None and reg.model_card(gid, "GLOBAL") is None
        assert reg.model_cards(gid) == {"EURUSD": eur, "GBPUSD": gbp, "USDJPY": jpy}
        # a new evaluation of one asset replaces that asset's card only
        again = reg.save_model_card(base.model_copy(update={"asset": "GBPUSD", "n_decisions": 3}))
        assert reg.model_card(gid, "GBPUSD") == again and reg.model_card(gid, "EURUSD") == eur
        # the per-asset model's card is its own, apart from the global model's
        own = reg.save_model_card(_card(eid, _fitted(bars)).model_copy(update={"n_decisions": 1}))
        assert reg.model_card(eid, "EURUSD") == own and reg.model_card(gid, "EURUSD") == eur
        assert reg.model_cards(eid) == {"EURUSD": own}
        window = (datetime(2019, 1, 1, tzinfo=UTC), datetime(2020, 1, 1, tzinfo=UTC))
        row = reg.record_metrics(gid, "sssd", "GBPUSD", 60, *window, {"crps": 1.0}, 10)
        assert (row.model_id, row.asset) == (gid, "GBPUSD")
        logged = reg.log_inference(gid, "USDJPY", window[0], [5], {"p": 1}, 1.0, "cpu")
        assert logged.asset == "USDJPY"
        # a per-asset model of another asset is refused everywhere
        with pytest.raises(RegistryError, match=r"model card: model \d+ \(EURUSD/m\) belongs to"):
            reg.save_model_card(own.model_copy(update={"asset": "GBPUSD"}))
        with pytest.raises(RegistryError, match=r"metrics: .* belongs to EURUSD, not GBPUSD"):
            reg.record_metrics(eid, "sssd", "GBPUSD", 60, *window, {"crps": 1.0}, 10)
        with pytest.raises(RegistryError, match=r"inference log: .* belongs to EURUSD"):
            reg.log_inference(eid, "GBPUSD", window[0], [5], {"p": 1}, 1.0, "cpu")
        assert reg.model_card(eid, "GBPUSD") is None


def test_plan_does_not_use_a_card_of_another_asset(bars: pd.DataFrame) -> None:
    card = _card(1, _fitted(bars))  # EURUSD's card: the model lost at 15 and 60 min
    mine = plan_serving(card, HORIZONS, FallbackConfig(), "m", "d" * 40, asset="EURUSD")
    assert mine.card == card and mine.sources()[60] == "fallback:ewma_seasonal"
    other = plan_serving(card, HORIZONS, FallbackConfig(), "m", "d" * 40, asset="GBPUSD")
    assert other.card is None and set(other.sources().values()) == {"model"}
    assert all("has no card on GBPUSD" in h.statement for h in other.horizons)


def test_upgrade_keys_existing_cards_by_their_models_asset(tmp_path: Path) -> None:
    """A registry whose cards were written at revision 0002 (one per model): upgrading gives
    each the model's own asset; downgrading keeps each model's card of its own asset."""
    engine = create_registry_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    try:
        upgrade(engine, "0002")
        now = "2019-01-01 00:00:00"
        with engine.begin() as conn:
            for i, asset in ((1, "EURUSD"), (2, "GLOBAL")):
                conn.execute(
                    text(
                        "INSERT INTO sssd_models (id, asset, model_name, model_type, "
                        "architecture_config, training_config, feature_config, horizon_config, "
                        "created_at, updated_at) VALUES (:i, :a, 'm', 'sssd', '{}', '{}', '{}', "
                        "'{}', :t, :t)"
                    ),
                    {"i": i, "a": asset, "t": now},
                )
            conn.execute(
                text(
                    "INSERT INTO sssd_model_cards (model_id, window_start, window_end, card, "
                    "created_at, updated_at) VALUES (1, :t, :t, '{}', :t, :t)"
                ),
                {"t": now},
            )
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        with engine.begin() as conn:
            rows = conn.execute(text("SELECT model_id, asset FROM sssd_model_cards")).all()
            assert [tuple(r) for r in rows] == [(1, "EURUSD")]
            conn.execute(
                text(
                    "INSERT INTO sssd_model_cards (model_id, asset, window_start, window_end, "
                    "card, created_at, updated_at) VALUES (2, :a, :t, :t, '{}', :t, :t)"
                ),
                [{"a": "EURUSD", "t": now}, {"a": "GBPUSD", "t": now}],
            )
        downgrade(engine, "0002")
        with engine.begin() as conn:
            rows = conn.execute(text("SELECT model_id FROM sssd_model_cards")).all()
            assert [tuple(r) for r in rows] == [(1,)]
    finally:
        engine.dispose()
