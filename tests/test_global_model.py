"""A global model (issue 24): one network for several pairs, per-asset standardizers fitted on
each asset's own training range, an asset embedding with an unseen-asset row, served per asset
with its own model card (evaluated per asset)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from forex_diffusion.calibration import load_recalibrator
from forex_diffusion.calibration.location import LocationShrink
from forex_diffusion.cli.main import app
from forex_diffusion.config.sssd_config import SSSDConfig, config_for_asset
from forex_diffusion.data.store import CandleStore
from forex_diffusion.data.synthetic import generate_synthetic_market
from forex_diffusion.dataset.collate import ASSET_KEY
from forex_diffusion.dataset.multi_asset import GLOBAL_ASSET, per_asset_standardizers
from forex_diffusion.dataset.source import build_feature_source
from forex_diffusion.errors import NotFoundError
from forex_diffusion.evaluation.walk_forward import evaluate
from forex_diffusion.inference.sssd_inference import (
    SSSDInferenceService,
    fit_history_standardizer,
    load_sssd_inference_service,
)
from forex_diffusion.models.build import build_sssd_model
from forex_diffusion.models.checkpoint import load_checkpoint, save_checkpoint
from forex_diffusion.models.init_from import fine_tune_config, per_asset_weights
from forex_diffusion.registry.model_cards import ModelCard
from forex_diffusion.registry.report import registry_report
from forex_diffusion.registry.repository import Registry
from forex_diffusion.training.multi_asset_data_module import MultiAssetDataModule
from fx_test_utils import load_fx
from training_utils import tiny_config, tiny_overrides
from walk_forward_utils import EVAL_END, EVAL_START, MODEL_NAME, eval_config

PAIRS = ("EURUSD", "GBPUSD")
ASOF = "2019-04-10T13:00:00Z"


def _store(fx_dir: Path, root: Path, assets: tuple[str, ...] = (*PAIRS, "USDJPY")) -> Path:
    """Jan–Apr 2019 of each asset (real data read in place)."""
    data_dir = root / "data"
    for asset in assets:
        if not (data_dir / asset).exists():
            df = load_fx(fx_dir, "2019-01-01", "2019-04-20", asset=asset)
            CandleStore(data_dir).write(asset, df, source=f"{asset}_M1_2019.csv.gz (Jan-Apr)")
    return data_dir


def _global_config(root: Path, *extra: str) -> SSSDConfig:
    return tiny_config(
        root,
        f"asset.symbol={GLOBAL_ASSET}",
        f"model.assets=[{', '.join(PAIRS)}]",
        "training.epochs=1",
        "training.max_train_batches_per_epoch=4",
        *extra,
    )


def test_batches_mix_assets_and_carry_their_embedding_rows(fx_dir: Path, tmp_path: Path) -> None:
    data_dir = _store(fx_dir, tmp_path, PAIRS)
    dm = MultiAssetDataModule(data_dir, _global_config(tmp_path))
    ds = dm.train_dataset
    sizes = [len(dm.modules[a].train_dataset) for a in PAIRS]
    assert len(ds) == sum(sizes) and min(sizes) > 100
    rng = np.random.default_rng(0)
    idx = rng.choice(len(ds), 40, replace=False)
    feats, y, hidx = ds.get_batch(idx)
    rows = feats[ASSET_KEY].tolist()
    assert set(rows) == {1, 2}  # both assets in one shuffled batch
    for k, i in enumerate(idx):  # the batched fetch equals the one-by-one fetch, in order
        f1, y1, h1 = ds[int(i)]
        assert int(f1[ASSET_KEY]) == rows[k] == (1 if i < sizes[0] else 2)
        assert torch.equal(y1, y[k]) and torch.equal(h1, hidx[k])
        assert all(torch.equal(f1[tf], feats[tf][k]) for tf in dm.feature_names)
    own = dm.modules["GBPUSD"].train_dataset[0]
    assert torch.equal(ds[sizes[0]][1], own[1])


def test_each_standardizer_is_fitted_on_its_own_assets_training_range(
    fx_dir: Path, tmp_path: Path
) -> None:
    cfg = _global_config(tmp_path)
    data_dir = _store(fx_dir, tmp_path / "a", PAIRS)
    before = MultiAssetDataModule(data_dir, cfg).standardizer_payload()
    assert set(before["assets"]) == set(PAIRS)
    assert before["assets"]["EURUSD"] != before["assets"]["GBPUSD"]
    # another asset's whole history and this asset's validation/test range: no effect
    store = CandleStore(data_dir)
    eur = store.load("EURUSD")
    eur[["open", "high", "low", "close"]] *= 1.5
    store.write("EURUSD", eur, on_conflict="replace")
    gbp = store.load("GBPUSD")
    late = gbp.index >= pd.Timestamp("2019-03-01", tz="UTC")
    gbp.loc[late, ["open", "high", "low", "close"]] *= 0.7
    store.write("GBPUSD", gbp, on_conflict="replace")
    after = MultiAssetDataModule(data_dir, cfg).standardizer_payload()
    assert after["assets"]["GBPUSD"] == before["assets"]["GBPUSD"]
    assert after["assets"]["EURUSD"] != before["assets"]["EURUSD"]  # the check can fail


def test_one_step_on_a_mixed_batch_reaches_every_asset_embedding(
    fx_dir: Path, tmp_path: Path
) -> None:
    data_dir = _store(fx_dir, tmp_path, PAIRS)
    cfg = _global_config(tmp_path, "model.asset_dropout=0.3")
    dm = MultiAssetDataModule(data_dir, cfg)
    torch.manual_seed(0)
    model = build_sssd_model(cfg, dm.input_dims).train()
    feats, y, hidx = dm.train_dataset.get_batch(
        np.linspace(0, len(dm.train_dataset) - 1, 64).astype(int)
    )
    # the zero-initialised embedding gets no gradient through a zero head output: take a
    # step on the rest first, as training does
    model.head.out.weight.data.normal_(0, 0.1)
    model(feats, y, hidx, generator=torch.Generator().manual_seed(1)).loss.backward()
    grad = model.asset_embedding.weight.grad
    assert grad is not None
    norms = grad.norm(dim=1)
    assert bool((norms > 0).all()), f"rows without gradient: {norms.tolist()}"  # 0 = dropout row
    with pytest.raises(ValueError, match="asset indices"):
        model.encode({**{tf: feats[tf] for tf in dm.feature_names}})


def test_train_global_then_serve_each_asset_and_an_unseen_one(fx_dir: Path, tmp_path: Path) -> None:
    data_dir = _store(fx_dir, tmp_path)
    overrides = tiny_overrides(
        tmp_path, "training.epochs=1", "training.max_train_batches_per_epoch=4"
    )
    args = ["train", "--preset", "cpu_small", "--global", "--assets", "EURUSD", "GBPUSD"]
    for o in overrides:
        args += ["-o", o]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    ckpt = tmp_path / "checkpoints" / GLOBAL_ASSET / "sssd_cpu_small" / "best.ckpt"
    loaded = load_checkpoint(ckpt)
    assert loaded.config.model.assets == list(PAIRS)
    cfg = tiny_config(tmp_path)
    eur = load_sssd_inference_service("EURUSD", config=cfg)
    gbp = load_sssd_inference_service("GBPUSD", config=cfg)
    assert (eur.asset, eur.asset_row, gbp.asset, gbp.asset_row) == ("EURUSD", 1, "GBPUSD", 2)
    assert eur.standardizer.to_dict() == loaded.standardizer["assets"]["EURUSD"]
    assert gbp.pip_size == 0.0001 and eur.model_name == "sssd_cpu_small"
    # train calibrated each asset on its own validation forecasts
    assert "EURUSD: calibration fitted on" in res.output and "GBPUSD: calibration" in res.output
    assert eur.calibration is not None and gbp.calibration is not None
    assert eur.calibration.to_dict() == loaded.calibration["assets"]["EURUSD"]
    assert eur.calibration.to_dict() != gbp.calibration.to_dict()
    store = CandleStore(data_dir)
    eur_df = store.load("EURUSD")
    p1 = eur.predict(eur_df, asof=ASOF, seed=3).to_dict()
    # serving EURUSD never reads GBPUSD: without GBPUSD's candles the forecast is the same
    shutil.rmtree(data_dir / "GBPUSD")
    again = load_sssd_inference_service("EURUSD", config=cfg)
    assert again.predict(eur_df, asof=ASOF, seed=3).to_dict()["pips"] == p1["pips"]
    # the embedding matters: EURUSD's windows forecast through GBPUSD's row differ
    as_gbp = SSSDInferenceService.from_checkpoint(ckpt, asset="GBPUSD", inference=cfg.inference)
    as_gbp.standardizer = eur.standardizer
    assert as_gbp.predict(eur_df, asof=ASOF, seed=3).to_dict()["pips"] != p1["pips"]
    # an asset the model never saw: unseen-asset row, standardizer fitted on its own history
    jpy = load_sssd_inference_service("USDJPY", config=cfg)
    assert (jpy.asset, jpy.asset_row, jpy.pip_size) == ("USDJPY", 0, 0.01)
    # no map for an asset without validation forecasts, only the location shrink pooled over
    # the model's assets (each fitted on its own validation forecasts)
    assert jpy.calibration is not None and jpy.calibration.location is not None
    own = [load_recalibrator(loaded.calibration["assets"][a]).location for a in PAIRS]
    assert jpy.calibration.location.keep == LocationShrink.pool(own).keep
    assert jpy.calibration.fitted_on["pooled_from"] == sorted(PAIRS)
    jpy_fc = jpy.predict(store.load("USDJPY"), asof=ASOF, seed=3, calibrated=False).to_dict()
    assert jpy_fc["asset"] == "USDJPY" and np.isfinite(jpy_fc["mean_pips"]["5"])
    with pytest.raises(NotFoundError, match="not one of the global model's assets"):
        SSSDInferenceService.from_checkpoint(ckpt, asset="USDJPY")
    # what evaluate does: the unseen asset's standardizer sees nothing from the scored range
    early = load_sssd_inference_service("USDJPY", config=cfg, history_end="2019-03-01")
    jpy_cfg_only = config_for_asset(cfg, "USDJPY")
    expected = fit_history_standardizer(store.load("USDJPY"), jpy_cfg_only, end="2019-03-01")
    assert early.standardizer.to_dict() == expected.to_dict()
    assert early.standardizer.to_dict() != jpy.standardizer.to_dict()
    # a fine-tune starts exactly where the global model serves the unseen asset
    jpy_cfg = fine_tune_config(
        tiny_config(tmp_path, "asset.symbol=USDJPY", "asset.pip_size=0.01"), loaded
    )
    assert not jpy_cfg.model.assets
    start = build_sssd_model(jpy_cfg, {tf: len(n) for tf, n in loaded.feature_names.items()})
    start.load_state_dict(per_asset_weights(loaded))
    ft = SSSDInferenceService(
        start, jpy_cfg.model_copy(update={"inference": cfg.inference}), jpy.standardizer
    )
    ft_fc = ft.predict(store.load("USDJPY"), asof=ASOF, seed=3).to_dict()
    for h in ("5", "240"):
        assert ft_fc["mean_pips"][h] == pytest.approx(jpy_fc["mean_pips"][h], rel=1e-4, abs=1e-6)
        assert ft_fc["std_pips"][h] == pytest.approx(jpy_fc["std_pips"][h], rel=1e-4)
    res = CliRunner().invoke(
        app,
        ["train", "--asset", "USDJPY", "--init-from", str(ckpt), "--preset", "cpu_small"]
        + [x for o in overrides for x in ("-o", o)],
    )
    assert res.exit_code == 0, res.output
    assert "global model of ['EURUSD', 'GBPUSD']" in res.output
    tuned = load_checkpoint(tmp_path / "checkpoints" / "USDJPY" / "sssd_cpu_small" / "best.ckpt")
    assert not tuned.config.model.assets and tuned.config.asset.symbol == "USDJPY"


def test_unseen_asset_standardizer_uses_only_the_range_given(fx_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, "asset.symbol=USDJPY", "asset.pip_size=0.01")
    df = load_fx(fx_dir, "2019-01-01", "2019-04-20", asset="USDJPY")
    a = fit_history_standardizer(df, cfg, "2019-01-01", "2019-03-01").to_dict()
    late = df.index >= pd.Timestamp("2019-03-01", tz="UTC")
    bent = df.copy()
    bent.loc[late, ["open", "high", "low", "close"]] *= 1.3
    assert fit_history_standardizer(bent, cfg, "2019-01-01", "2019-03-01").to_dict() == a
    assert fit_history_standardizer(bent, cfg).to_dict() != a


# ------------------------------------------------------------------ cards per served asset


@pytest.fixture(scope="module")
def global_cards(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Registry, int]:
    """A deliberately bad tiny global model of EURUSD and GBPUSD on synthetic candles (its
    denoiser returns a constant), registered as GLOBAL/tiny_eval and evaluated by ``evaluate``
    on each asset's test week: one card per asset."""
    root = tmp_path_factory.mktemp("global_cards")
    with CandleStore(root / "store") as store:
        for seed, asset in enumerate(PAIRS, start=3):
            candles = generate_synthetic_market("2019-01-01", "2019-02-09", seed=seed)
            store.write(asset, candles, source=f"synthetic seed {seed}")
    cfg = eval_config(root, [f"asset.symbol={GLOBAL_ASSET}", f"model.assets=[{', '.join(PAIRS)}]"])
    standardizers, names = {}, {}
    with CandleStore(root / "store") as store:
        for asset in PAIRS:
            source = build_feature_source(store.load(asset), config_for_asset(cfg, asset))
            standardizers[asset] = source.standardizer.to_dict()
            names = {tf: list(n) for tf, n in source.feature_names.items()}
    torch.manual_seed(cfg.seed)
    model = build_sssd_model(cfg, {tf: len(n) for tf, n in names.items()})
    with torch.no_grad():
        model.head.out.weight.zero_()
        model.head.out.bias.fill_(2.0)
    path = Path(cfg.paths.checkpoint_dir) / GLOBAL_ASSET / MODEL_NAME / "best.ckpt"
    save_checkpoint(path, model, cfg, names, per_asset_standardizers(standardizers))
    registry = Registry(f"sqlite:///{root / 'registry.db'}")
    gid = registry.register_from_config(cfg).id
    registry.record_checkpoint(gid, path, epoch=0, is_best=True, train_loss=None, val_loss=None)
    for asset in PAIRS:
        run = evaluate(
            eval_config(root),
            asset,
            EVAL_START,
            EVAL_END,
            model_name=MODEL_NAME,
            num_samples=16,
            out_dir=root / "reports" / asset,
            registry=registry,
            progress=False,
        )
        assert run.model_id == gid and run.metric_rows > 0
        assert run.card is not None and run.card.asset == asset
    return root, registry, gid


def _lost_horizons(card: ModelCard) -> list[int]:
    return [h.horizon for h in card.horizons if h.verdict == "worse"]


def test_evaluating_a_global_model_records_a_card_per_asset(
    global_cards: tuple[Path, Registry, int],
) -> None:
    _, registry, gid = global_cards
    # the global model is the only model: evaluate registered nothing per asset
    assert [(m.asset, m.id) for m in registry.list_models()] == [(GLOBAL_ASSET, gid)]
    cards = registry.model_cards(gid)
    assert set(cards) == set(PAIRS)
    for asset in PAIRS:
        card = registry.model_card(gid, asset)
        assert card == cards[asset] and card.asset == asset and card.model_id == gid
        rows = [m for m in registry.latest_metrics(asset) if m.model_id == gid]
        assert rows and {m.asset for m in rows} == {asset}
    eur, gbp = cards["EURUSD"], cards["GBPUSD"]
    assert [h.crps_baseline for h in eur.horizons] != [h.crps_baseline for h in gbp.horizons]
    assert registry.model_card(gid, "USDJPY") is None
    # `registry show GLOBAL` reports the rows of every asset the model was evaluated on
    report = registry_report(registry, GLOBAL_ASSET)
    (entry,) = report["models"]
    assert {m["asset"] for m in entry["latest_metrics"]} == set(PAIRS)
    assert {m["model_id"] for m in entry["latest_metrics"]} == {gid}


def test_served_asset_uses_its_own_card(global_cards: tuple[Path, Registry, int]) -> None:
    """EURUSD's card says the model won everywhere, GBPUSD's that it lost: GBPUSD falls back
    where it lost, EURUSD is served the model."""
    root, registry, gid = global_cards
    gbp_card = registry.model_card(gid, "GBPUSD")
    eur_card = registry.model_card(gid, "EURUSD")
    assert gbp_card is not None and eur_card is not None
    lost = _lost_horizons(gbp_card)
    assert lost  # the bad model loses somewhere
    won = tuple(
        e.model_copy(update={"skill": 0.05, "dm_pvalue": 0.001, "verdict": "better"})
        for e in eur_card.horizons
    )
    winner = registry.save_model_card(eur_card.model_copy(update={"horizons": won}))
    assert registry.model_card(gid, "GBPUSD") == gbp_card  # untouched
    config = eval_config(root)
    asof = pd.Timestamp("2019-02-06 12:00", tz="UTC")
    for asset, card in (("EURUSD", winner), ("GBPUSD", gbp_card)):
        service = load_sssd_inference_service(
            asset, model_name=MODEL_NAME, config=config, registry=registry
        )
        assert service.model_id == gid and service.card == card
        with CandleStore(root / "store") as store:
            candles = store.load(asset, start=asof - service.history_span, end=asof)
        pred = service.predict(candles, num_samples=16, asof=asof, seed=1)
        for h in service.horizons:
            if asset == "GBPUSD" and h in lost:
                assert pred.source[h].startswith("fallback:"), (asset, h)
                assert "worse than" in pred.card_statement[h]
            else:
                assert pred.source[h] == "model", (asset, h)
        assert pred.card is not None and pred.card["asset"] == asset
    # the served asset's card only: GBPUSD's card handed to EURUSD's service is not used
    path = Path(config.paths.checkpoint_dir) / GLOBAL_ASSET / MODEL_NAME / "best.ckpt"
    wrong = SSSDInferenceService.from_checkpoint(
        path, asset="EURUSD", inference=config.inference, card=gbp_card
    )
    assert wrong.serving.card is None
    assert set(wrong.serving.sources().values()) == {"model"}


def test_evaluate_registers_an_unregistered_global_model_under_global(
    global_cards: tuple[Path, Registry, int],
) -> None:
    """A global checkpoint the registry lacks is registered as GLOBAL/<name> by evaluate (not
    as a model of the evaluated asset), and its card is that asset's."""
    root, _, _ = global_cards
    with Registry(f"sqlite:///{root / 'fresh.db'}") as fresh:
        run = evaluate(
            eval_config(root),
            "GBPUSD",
            EVAL_START,
            EVAL_END,
            model_name=MODEL_NAME,
            num_samples=4,
            out_dir=root / "reports" / "fresh",
            registry=fresh,
            progress=False,
        )
        models = fresh.list_models()
        assert [(m.asset, m.model_name) for m in models] == [(GLOBAL_ASSET, MODEL_NAME)]
        assert models[0].architecture_config["assets"] == list(PAIRS)
        assert run.model_id == models[0].id and run.card is not None
        assert fresh.model_cards(models[0].id) == {"GBPUSD": run.card}


def test_the_report_says_how_the_global_model_served_the_pair(
    global_cards: tuple[Path, Registry, int],
) -> None:
    """The report's model note names the global model and the row that served the pair: the
    pair's own embedding, or for a pair the model never saw the unseen-asset row with a
    standardizer fitted on the pair's history before the evaluated range."""
    root, _, _ = global_cards
    own = (root / "reports" / "GBPUSD" / "report.md").read_text()
    assert "global model of EURUSD, GBPUSD, serving GBPUSD through its own asset embedding" in own
    assert "never saw" not in own
    with CandleStore(root / "store") as store:
        candles = generate_synthetic_market("2019-01-01", "2019-02-09", seed=9)
        store.write("USDCHF", candles, source="synthetic seed 9")
    with Registry(f"sqlite:///{root / 'unseen.db'}") as fresh:
        evaluate(
            eval_config(root),
            "USDCHF",
            EVAL_START,
            EVAL_END,
            model_name=MODEL_NAME,
            num_samples=4,
            out_dir=root / "reports" / "USDCHF",
            registry=fresh,
            progress=False,
        )
    text = (root / "reports" / "USDCHF" / "report.md").read_text()
    assert (
        "global model of EURUSD, GBPUSD, which never saw USDCHF: served through the unseen-asset "
        f"embedding with a standardizer fitted on USDCHF's own history before {EVAL_START}"
    ) in text
