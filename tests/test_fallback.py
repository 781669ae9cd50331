"""The fallback policy on synthetic data: a deliberately bad model is evaluated, its card goes to
the registry, and predict serves the best baseline where the card says it lost, saying so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from forex_diffusion.data.resample import resample_ohlc
from forex_diffusion.data.store import CandleStore
from forex_diffusion.data.synthetic import generate_synthetic_market
from forex_diffusion.dataset.source import build_feature_source
from forex_diffusion.evaluation.walk_forward import EvaluationResult, evaluate
from forex_diffusion.features.targets import log_return_to_price_change
from forex_diffusion.inference.fallback import stratified_samples
from forex_diffusion.inference.sssd_inference import (
    SSSDInferenceService,
    load_sssd_inference_service,
)
from forex_diffusion.models.baselines import baseline_from_state
from forex_diffusion.models.build import build_sssd_model
from forex_diffusion.models.checkpoint import save_checkpoint
from forex_diffusion.registry.model_cards import CardHorizon, ModelCard
from forex_diffusion.registry.repository import Registry
from walk_forward_utils import (
    EVAL_END,
    EVAL_START,
    MODEL_NAME,
    eval_config,
    write_store,
)

ASOF = pd.Timestamp("2019-02-06 12:00", tz="UTC")  # after the card's (test) range
SEED = 7


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("fallback")
    candles = generate_synthetic_market("2019-01-01", "2019-02-09", seed=3)
    write_store(base / "store", candles)
    return base


@pytest.fixture(scope="module")
def registry(root: Path) -> Registry:
    return Registry(f"sqlite:///{root / 'registry.db'}")


@pytest.fixture(scope="module")
def checkpoint(root: Path) -> Path:
    """A deliberately bad model: the denoiser's output layer returns a constant, so every
    forecast is far off (an untrained model alone is not reliably worse than the baselines)."""
    config = eval_config(root)
    with CandleStore(root / "store") as store:
        candles = store.load("EURUSD")
    source = build_feature_source(candles, config, standardizer=None)
    names = {tf: list(n) for tf, n in source.feature_names.items()}
    torch.manual_seed(config.seed)
    model = build_sssd_model(config, {tf: len(n) for tf, n in names.items()})
    with torch.no_grad():
        model.head.out.weight.zero_()
        model.head.out.bias.fill_(2.0)
    path = Path(config.paths.checkpoint_dir) / "EURUSD" / config.model.name / "best.ckpt"
    return save_checkpoint(path, model, config, names, source.standardizer.to_dict())


@pytest.fixture(scope="module")
def card_run(root: Path, registry: Registry, checkpoint: Path) -> EvaluationResult:
    """The untrained model evaluated on its test range: this writes its card."""
    return evaluate(
        eval_config(root, ["evaluation.served=true"]),
        "EURUSD",
        EVAL_START,
        EVAL_END,
        model_name=MODEL_NAME,
        num_samples=16,
        out_dir=root / "reports" / "card",
        registry=registry,
        progress=False,
    )


def _candles(root: Path, service: SSSDInferenceService) -> pd.DataFrame:
    with CandleStore(root / "store") as store:
        return store.load("EURUSD", start=ASOF - service.history_span, end=ASOF)


def _service(root: Path, registry: Registry, *extra: str) -> SSSDInferenceService:
    return load_sssd_inference_service(
        "EURUSD", model_name=MODEL_NAME, config=eval_config(root, extra), registry=registry
    )


def _lost(card: ModelCard, alpha: float = 0.05) -> list[int]:
    return [
        h.horizon
        for h in card.horizons
        if h.skill is not None and h.dm_pvalue is not None and h.skill < 0 and h.dm_pvalue < alpha
    ]


def test_evaluate_writes_the_card_from_the_report(card_run: EvaluationResult) -> None:
    card = card_run.card
    assert card is not None and card.model_name == MODEL_NAME and card.range_name == "test range"
    s = card_run.summary
    assert tuple(h.horizon for h in card.horizons) == s.horizons
    for entry in card.horizons:
        v = s.verdict(entry.horizon)
        m = s.get(MODEL_NAME, entry.horizon)
        assert entry.best_baseline == v.best_baseline
        assert entry.skill == pytest.approx(v.model_skill)
        assert entry.dm_pvalue == pytest.approx(v.dm_pvalue)
        assert entry.coverage90 == pytest.approx(m.coverage["0.9"])
        assert entry.coverage50 == pytest.approx(m.coverage["0.5"])
        expected = {"beats": "better", "loses": "worse"}.get(v.outcome, "level")
        assert entry.verdict == expected
        assert entry.best_baseline in card.baselines
        assert 0.0 <= (entry.pool_weight or 0.0) <= 1.0
    # the bad model loses significantly somewhere: the rest of this file relies on it
    assert _lost(card)
    # no earlier card existed, so the served row used a walk-forward card and says so
    assert s.labels["served"] == "served (walk-forward card)"
    assert any("walk-forward card" in n for n in s.notes)


def test_bad_model_is_replaced_by_the_baseline_where_it_lost(
    root: Path, registry: Registry, card_run: EvaluationResult
) -> None:
    card = card_run.card
    assert card is not None
    service = _service(root, registry)
    assert service.card == card  # load_sssd_inference_service hands the registry's card over
    candles = _candles(root, service)
    pred = service.predict(candles, num_samples=64, asof=ASOF, seed=SEED)
    plain = _service(root, registry, "inference.fallback.enabled=false").predict(
        candles, num_samples=64, asof=ASOF, seed=SEED
    )
    lost = _lost(card)
    bars5 = resample_ohlc(candles[candles.index < pred.timestamp], "5m")
    times = pd.DatetimeIndex([pred.timestamp])
    data = pred.to_dict()
    for h in service.horizons:
        entry = card.at(h)
        assert entry is not None
        statement = data["card_statement"][str(h)]
        assert statement.startswith(f"on its test range ({card.dates()}) this model was ")
        if h in lost:
            b = entry.best_baseline
            assert pred.source[h] == data["source"][str(h)] == f"fallback:{b}"
            assert f"% worse than {entry.baseline_name}" in statement and "instead" in statement
            base = baseline_from_state(card.baselines[b]).forecast(bars5, times, service.horizons)
            grid = stratified_samples(base, 64)[0, service.horizons.index(h)]
            expected = log_return_to_price_change(grid, pred.last_close)
            np.testing.assert_allclose(pred.samples[h], expected, rtol=1e-9, atol=1e-12)
            assert not np.allclose(pred.samples[h], plain.samples[h])
            # with the policy off the model is served, and the card still says it lost
            assert plain.source[h] == "model" and "policy is off" in plain.card_statement[h]
        else:
            assert pred.source[h] == "model"
            np.testing.assert_array_equal(pred.samples[h], plain.samples[h])
    assert data["card"]["model_name"] == MODEL_NAME and "baselines" not in data["card"]


def test_winning_horizons_are_served_unchanged_and_pool_mode(
    root: Path, registry: Registry, checkpoint: Path, card_run: EvaluationResult
) -> None:
    card = card_run.card
    assert card is not None
    lost_h = _lost(card)[0]
    # the same weights with a card that says the model won everywhere except one horizon
    entries = tuple(
        e
        if e.horizon == lost_h
        else CardHorizon(
            horizon=e.horizon,
            best_baseline=e.best_baseline,
            skill=0.05,
            dm_pvalue=0.001,
            verdict="better",
            n=e.n,
        )
        for e in card.horizons
    )
    winner = card.model_copy(update={"horizons": entries})
    cfg = eval_config(root)
    plain = SSSDInferenceService.from_checkpoint(checkpoint, inference=cfg.inference)
    served = SSSDInferenceService.from_checkpoint(checkpoint, inference=cfg.inference, card=winner)
    candles = _candles(root, plain)
    a = plain.predict(candles, num_samples=32, asof=ASOF, seed=SEED)
    b = served.predict(candles, num_samples=32, asof=ASOF, seed=SEED)
    for h in plain.horizons:
        if h == lost_h:
            assert b.source[h].startswith("fallback:")
        else:
            assert b.source[h] == "model" and "5.0 % better than" in b.card_statement[h]
            np.testing.assert_array_equal(a.samples[h], b.samples[h])
    # no card: the model everywhere, and the output says it has none
    assert set(a.source.values()) == {"model"} and a.card is None
    assert all("has no card" in s for s in a.card_statement.values())
    # pool mode: the lost horizon gets the mixture of the model and the baseline
    pool_cfg = cfg.inference.model_copy(
        update={"fallback": cfg.inference.fallback.model_copy(update={"mode": "pool"})}
    )
    pooled = SSSDInferenceService.from_checkpoint(checkpoint, inference=pool_cfg, card=card)
    p = pooled.predict(candles, num_samples=32, asof=ASOF, seed=SEED)
    for h in _lost(card):
        entry = card.at(h)
        assert entry is not None and entry.pool_weight is not None
        assert p.source[h] == "pool" and "CRPS-optimal pool" in p.card_statement[h]
        n_model = round(entry.pool_weight * 32)
        if 0 < n_model < 32:  # a true mixture differs from the model and from the baseline
            assert not np.allclose(np.sort(p.samples[h]), np.sort(a.samples[h]))


def test_a_card_of_other_weights_is_not_used(
    root: Path, checkpoint: Path, card_run: EvaluationResult
) -> None:
    card = card_run.card
    assert card is not None
    stale = card.model_copy(update={"weights_digest": "0" * 40})
    cfg = eval_config(root)
    service = SSSDInferenceService.from_checkpoint(checkpoint, inference=cfg.inference, card=stale)
    pred = service.predict(_candles(root, service), num_samples=16, asof=ASOF, seed=SEED)
    assert set(pred.source.values()) == {"model"} and pred.card is None
    assert all("other weights" in s for s in pred.card_statement.values())


def test_served_row_uses_the_earlier_card_out_of_sample(
    root: Path, registry: Registry, card_run: EvaluationResult
) -> None:
    """Evaluated after the card's range, the served row uses that card as predict does: at the
    lost horizons it is the best baseline's distribution, elsewhere the model's forecast."""
    card = card_run.card
    assert card is not None
    later = evaluate(
        eval_config(root, ["evaluation.served=true"]),
        "EURUSD",
        "2019-02-04",
        "2019-02-06",
        model_name=MODEL_NAME,
        num_samples=16,
        out_dir=root / "reports" / "later",
        registry=registry,
        progress=False,
    )
    s = later.summary
    assert s.labels["served"] == f"served (card of test range {card.dates()})"
    served = later.forecasts["served"].samples
    model = later.forecasts[MODEL_NAME].samples
    assert served is not None and model is not None
    for j, h in enumerate(s.horizons):
        entry = card.at(h)
        assert entry is not None
        if h in _lost(card):
            grid = stratified_samples(later.forecasts[entry.best_baseline], 16)
            np.testing.assert_allclose(served[:, j], grid[:, j])
        else:
            np.testing.assert_array_equal(served[:, j], model[:, j])
    # the later evaluation replaced the card (one per model)
    assert (
        later.card is not None and registry.model_card(later.card.model_id, "EURUSD") == later.card
    )


def test_served_row_without_an_earlier_card_uses_a_walk_forward_card(
    root: Path, registry: Registry, card_run: EvaluationResult
) -> None:
    """On a range that overlaps the stored card's, the card would be in-sample: the served row
    draws its verdicts at the start of each week from the outcomes known by then, so the first
    week is the model's forecast and the second falls back where enough outcomes show the loss."""
    run = evaluate(
        eval_config(root, ["evaluation.served=true"]),
        "EURUSD",
        "2019-01-28",
        "2019-02-06",
        model_name=MODEL_NAME,
        num_samples=16,
        out_dir=root / "reports" / "walk_forward",
        registry=registry,
        progress=False,
    )
    assert run.summary.labels["served"] == "served (walk-forward card)"
    served = run.forecasts["served"].samples
    model = run.forecasts[MODEL_NAME].samples
    assert served is not None and model is not None
    times = run.forecasts["served"].times
    week2 = times.min() + pd.Timedelta(days=7)  # the second block of the walk-forward card
    second = times >= week2
    assert second.any() and (~second).any()
    np.testing.assert_array_equal(served[~second], model[~second])
    grids = {b: stratified_samples(run.forecasts[b], 16) for b in run.summary.baselines}
    fell_back = 0
    for j, h in enumerate(run.summary.horizons):
        known = int((times + pd.Timedelta(minutes=h) <= week2).sum())
        if known < 100:  # no verdict yet: the model is served
            np.testing.assert_array_equal(served[second, j], model[second, j])
            continue
        # the bad model loses by far: the second week is a baseline's distribution
        assert any(np.allclose(served[second, j], g[second, j]) for g in grids.values()), h
        fell_back += 1
    assert fell_back >= 1
    # the served row beats the bad model by far wherever it fell back
    assert run.summary.get("served", 5).crps < run.summary.get(MODEL_NAME, 5).crps
