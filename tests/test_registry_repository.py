"""Registry repository API, on SQLite and on a real PostgreSQL (``registry_url`` fixture)."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from forex_diffusion.config.sssd_config import load_sssd_config
from forex_diffusion.errors import NotFoundError, RegistryError
from forex_diffusion.registry import Registry, model_configs_from_sssd
from forex_diffusion.registry.report import registry_report

CONFIGS: dict[str, dict[str, Any]] = {
    "architecture_config": {"encoder": {"d_model": 128, "n_layers": 4}, "context_dim": 512},
    "training_config": {"epochs": 100, "learning_rate": 3e-4},
    "feature_config": {"names": ["returns", "rsi"], "timeframes": ["5m", "15m", "1h", "4h"]},
    "horizon_config": {"horizons": [5, 15, 60, 240]},
}


def configs(**changes: Any) -> dict[str, dict[str, Any]]:
    """CONFIGS with some top-level keys of some sections replaced: configs(training_config={...})."""
    out = {k: dict(v) for k, v in CONFIGS.items()}
    for section, update in changes.items():
        out[section].update(update)
    return out


@pytest.fixture
def reg(registry_url: str) -> Iterator[Registry]:
    registry = Registry(registry_url)
    yield registry
    registry.close()


# --------------------------------------------------------------------------- models


def test_register_is_idempotent_and_normalises_asset(reg: Registry) -> None:
    first = reg.register_model("eurusd", "sssd_v1", **CONFIGS)
    again = reg.register_model("EURUSD", "sssd_v1", **CONFIGS)
    assert first.id == again.id
    assert first.asset == "EURUSD"
    assert first.horizon_config == {"horizons": [5, 15, 60, 240]}
    assert first.created_at.tzinfo is not None
    assert [m.id for m in reg.list_models()] == [first.id]


def test_register_same_name_other_config_names_the_difference(reg: Registry) -> None:
    reg.register_model("EURUSD", "sssd_v1", **CONFIGS)
    changed = configs(architecture_config={"context_dim": 256}, training_config={"epochs": 5})
    with pytest.raises(RegistryError) as err:
        reg.register_model("EURUSD", "sssd_v1", **changed)
    message = str(err.value)
    assert "EURUSD/sssd_v1" in message
    assert "architecture_config.context_dim: 512 -> 256" in message
    assert "training_config.epochs: 100 -> 5" in message
    assert "new_version" in message and "sssd_v2" in message
    assert len(reg.list_models("EURUSD")) == 1


def test_new_version_creates_next_name_and_is_idempotent(reg: Registry) -> None:
    v1 = reg.register_model("EURUSD", "sssd_v1", **CONFIGS)
    changed = configs(training_config={"epochs": 5})
    v2 = reg.register_model("EURUSD", "sssd_v1", new_version=True, **changed)
    assert v2.model_name == "sssd_v2" and v2.id != v1.id
    assert reg.register_model("EURUSD", "sssd_v1", new_version=True, **changed).id == v2.id
    third = configs(training_config={"epochs": 7})
    assert reg.register_model("EURUSD", "sssd_v1", new_version=True, **third).model_name == (
        "sssd_v3"
    )
    # same config as v1 with new_version: the existing v1 is returned, nothing new
    assert reg.register_model("EURUSD", "sssd_v1", new_version=True, **CONFIGS).id == v1.id
    plain = reg.register_model("EURUSD", "mymodel", **CONFIGS)
    bumped = reg.register_model("EURUSD", "mymodel", new_version=True, **changed)
    assert (plain.model_name, bumped.model_name) == ("mymodel", "mymodel_v2")
    assert [m.model_name for m in reg.list_models("EURUSD")] == [
        "mymodel",
        "mymodel_v2",
        "sssd_v1",
        "sssd_v2",
        "sssd_v3",
    ]


def test_same_name_on_two_assets_are_two_models(reg: Registry) -> None:
    a = reg.register_model("EURUSD", "sssd_v1", **CONFIGS)
    b = reg.register_model("USDJPY", "sssd_v1", **configs(training_config={"epochs": 1}))
    assert a.id != b.id
    assert reg.known_assets() == ["EURUSD", "USDJPY"]
    assert [m.asset for m in reg.list_models()] == ["EURUSD", "USDJPY"]
    assert reg.list_models("GBPUSD") == []


def test_register_from_real_config(reg: Registry, default_config_path: Path) -> None:
    config = load_sssd_config(default_config_path)
    model = reg.register_from_config(config)
    assert (model.asset, model.model_name) == (config.asset.symbol, config.model.name)
    assert model.horizon_config == {"horizons": list(config.data.horizons)}
    assert model.feature_config["lookbacks"] == config.data.lookbacks
    assert model.architecture_config == model_configs_from_sssd(config)["architecture_config"]
    assert reg.register_from_config(config).id == model.id
    other = config.with_overrides(["model.encoder.d_model=64"])
    with pytest.raises(RegistryError, match=r"architecture_config\.encoder\.d_model: 128 -> 64"):
        reg.register_from_config(other)


def test_configs_that_are_not_json_are_rejected_with_their_path(reg: Registry) -> None:
    bad = configs(training_config={"optimizer": object()})
    with pytest.raises(RegistryError, match=r"training_config\.optimizer: a object"):
        reg.register_model("EURUSD", "m", **bad)
    with pytest.raises(RegistryError, match=r"architecture_config\.scale: nan"):
        reg.register_model("EURUSD", "m", **configs(architecture_config={"scale": math.nan}))
    assert reg.list_models() == []


def test_unknown_model_and_asset_list_what_exists(reg: Registry) -> None:
    with pytest.raises(NotFoundError, match="the registry is empty"):
        reg.get_model("EURUSD", "sssd_v1")
    reg.register_model("EURUSD", "sssd_v1", **CONFIGS)
    reg.register_model("EURUSD", "small", **CONFIGS)
    reg.register_model("USDJPY", "sssd_v1", **CONFIGS)
    with pytest.raises(NotFoundError) as err:
        reg.get_model("EURUSD", "sssd_v9")
    assert "'sssd_v9'" in str(err.value) and "models of EURUSD: small, sssd_v1" in str(err.value)
    with pytest.raises(NotFoundError, match="registered assets: EURUSD, USDJPY"):
        registry_report(reg, "GBPUSD")
    with pytest.raises(NotFoundError, match="registered assets: EURUSD, USDJPY"):
        reg.best_checkpoint("GBPUSD")
    with pytest.raises(NotFoundError, match=r"no model with id 999 .*1 \(EURUSD/sssd_v1\)"):
        reg.start_run(999, "r", {}, {}, "cpu")


# --------------------------------------------------------------------------- checkpoints


def test_checkpoints_best_flag_moves_and_best_is_picked(reg: Registry, tmp_path: Path) -> None:
    model = reg.register_model("EURUSD", "sssd_v1", **CONFIGS)
    c1 = reg.record_checkpoint(model.id, tmp_path / "e1.pt", 1, True, 0.9, 0.8, {"crps": 1.5}, 10)
    c2 = reg.record_checkpoint(model.id, tmp_path / "e2.pt", 2, True, 0.7, 0.6, {"crps": 1.2}, 10)
    c3 = reg.record_checkpoint(model.id, tmp_path / "e3.pt", 3, False, 0.6, 0.7, {}, 10)
    flags = {c.path: c.is_best for c in reg.list_checkpoints("EURUSD")}
    assert flags == {c1.path: False, c2.path: True, c3.path: False}
    best = reg.best_checkpoint("EURUSD", "sssd_v1")
    assert (best.path, best.epoch, best.val_metrics) == (str(tmp_path / "e2.pt"), 2, {"crps": 1.2})
    assert reg.best_checkpoint("eurusd").id == c2.id
    assert [c.id for c in reg.list_checkpoints("EURUSD", best_only=True)] == [c2.id]


def test_best_across_models_uses_val_loss(reg: Registry, tmp_path: Path) -> None:
    a = reg.register_model("EURUSD", "a", **CONFIGS)
    b = reg.register_model("EURUSD", "b", **CONFIGS)
    reg.record_checkpoint(a.id, tmp_path / "a.pt", 4, True, 0.1, 0.50, {}, 1)
    b_best = reg.record_checkpoint(b.id, tmp_path / "b.pt", 9, True, 0.1, 0.40, {}, 1)
    reg.record_checkpoint(b.id, tmp_path / "b_last.pt", 10, False, 0.1, 0.45, {}, 1)
    assert reg.best_checkpoint("EURUSD").id == b_best.id
    assert reg.best_checkpoint("EURUSD", "a").path == str(tmp_path / "a.pt")


def test_best_without_flag_falls_back_to_lowest_val_loss(reg: Registry, tmp_path: Path) -> None:
    model = reg.register_model("EURUSD", "m", **CONFIGS)
    with pytest.raises(NotFoundError, match="no checkpoint registered for EURUSD/m"):
        reg.best_checkpoint("EURUSD", "m")
    reg.record_checkpoint(model.id, tmp_path / "1.pt", 1, False, 1.0, 0.3, {}, 1)
    reg.record_checkpoint(model.id, tmp_path / "2.pt", 2, False, 1.0, None, {}, 1)
    reg.record_checkpoint(model.id, tmp_path / "3.pt", 3, False, 1.0, 0.2, {}, 1)
    assert reg.best_checkpoint("EURUSD", "m").epoch == 3


def test_rerecording_a_path_updates_it_and_delete_forgets_it(reg: Registry, tmp_path: Path) -> None:
    model = reg.register_model("EURUSD", "m", **CONFIGS)
    path = tmp_path / "best.pt"
    path.write_bytes(b"x" * 1234)
    first = reg.record_checkpoint(model.id, path, 1, True, 1.0, 0.9, {"nll": math.inf})
    assert first.size_bytes == 1234 and first.val_metrics == {"nll": None}
    second = reg.record_checkpoint(model.id, str(path), 5, True, 0.5, 0.4, {"nll": 2.0}, 99)
    assert second.id == first.id
    rows = reg.list_checkpoints(model_id=model.id)
    assert [(c.epoch, c.val_loss, c.size_bytes) for c in rows] == [(5, 0.4, 99)]
    with pytest.raises(RegistryError, match="cannot read its size"):
        reg.record_checkpoint(model.id, tmp_path / "missing.pt", 1, False, 1.0, 1.0)
    assert reg.delete_checkpoint(path) is True
    assert reg.delete_checkpoint(path) is False
    assert reg.list_checkpoints(model_id=model.id) == []


def test_nan_losses_are_stored_as_null(reg: Registry, tmp_path: Path) -> None:
    model = reg.register_model("EURUSD", "m", **CONFIGS)
    ckpt = reg.record_checkpoint(model.id, tmp_path / "x.pt", 1, False, math.nan, math.inf, {}, 1)
    assert ckpt.train_loss is None and ckpt.val_loss is None


def test_database_enforces_one_best_per_model_and_foreign_keys(
    reg: Registry, tmp_path: Path
) -> None:
    model = reg.register_model("EURUSD", "m", **CONFIGS)
    reg.record_checkpoint(model.id, tmp_path / "a.pt", 1, True, 1.0, 1.0, {}, 1)
    insert = text(
        "INSERT INTO sssd_checkpoints (model_id, path, epoch, is_best, val_metrics, size_bytes,"
        " created_at) VALUES (:m, :p, 2, :b, '{}', 1, :t)"
    )
    now = datetime.now(UTC)
    with pytest.raises(IntegrityError), reg.engine.begin() as conn:
        conn.execute(insert, {"m": model.id, "p": "/other/b.pt", "b": True, "t": now})
    with pytest.raises(IntegrityError), reg.engine.begin() as conn:
        conn.execute(insert, {"m": 12345, "p": "/other/c.pt", "b": False, "t": now})


def test_deleting_a_model_cascades(reg: Registry, tmp_path: Path) -> None:
    model = reg.register_model("EURUSD", "m", **CONFIGS)
    reg.record_checkpoint(model.id, tmp_path / "a.pt", 1, True, 1.0, 1.0, {}, 1)
    reg.start_run(model.id, "r", {}, {}, "cpu")
    with reg.engine.begin() as conn:
        conn.execute(text("DELETE FROM sssd_models WHERE id = :m"), {"m": model.id})
    assert reg.list_checkpoints() == [] and reg.list_runs() == []


# --------------------------------------------------------------------------- runs


def test_run_lifecycle(reg: Registry, tmp_path: Path) -> None:
    model = reg.register_model("EURUSD", "m", **CONFIGS)
    data_range = {"train": {"start": pd.Timestamp("2020-01-01"), "end": "2021-12-31"}}
    run = reg.start_run(
        model.id, "run-1", data_range, {"lr": 3e-4, "batch": 64}, "cpu", tmp_path / "log.txt"
    )
    assert run.status == "running" and run.completed_at is None
    assert run.data_range == {"train": {"start": "2020-01-01T00:00:00", "end": "2021-12-31"}}
    assert run.log_path == str(tmp_path / "log.txt") and run.host and run.pid
    done = reg.complete_run(
        run.id, best_epoch=7, epochs=10, final_train_loss=0.1, final_val_loss=0.2
    )
    assert done.status == "completed" and done.best_epoch == 7 and done.epochs == 10
    assert done.completed_at is not None and done.duration_seconds is not None
    assert done.duration_seconds >= 0
    with pytest.raises(RegistryError, match="already completed"):
        reg.fail_run(run.id, "late failure")

    failed = reg.fail_run(reg.start_run(model.id, "run-2", {}, {}, "cuda").id, "CUDA OOM\n...")
    assert failed.status == "failed" and failed.error_message == "CUDA OOM\n..."
    stopped = reg.interrupt_run(reg.start_run(model.id, "run-3", {}, {}, "cpu").id)
    assert stopped.status == "interrupted"
    assert [r.run_name for r in reg.list_runs("EURUSD")] == ["run-3", "run-2", "run-1"]
    assert [r.run_name for r in reg.list_runs(status="failed")] == ["run-2"]
    assert reg.get_run(run.id).final_val_loss == 0.2
    with pytest.raises(NotFoundError, match="no training run with id 999"):
        reg.complete_run(999, 1, 1, 0.0, 0.0)
    with pytest.raises(RegistryError, match="unknown run status"):
        reg.list_runs(status="done")


def test_status_is_enforced_by_the_database(reg: Registry) -> None:
    model = reg.register_model("EURUSD", "m", **CONFIGS)
    run = reg.start_run(model.id, "r", {}, {}, "cpu")
    with pytest.raises(IntegrityError), reg.engine.begin() as conn:
        conn.execute(
            text("UPDATE sssd_training_runs SET status = 'finished' WHERE id = :r"), {"r": run.id}
        )
    assert reg.get_run(run.id).status == "running"


def test_mark_stale_leaves_live_and_foreign_runs_alone(reg: Registry) -> None:
    model = reg.register_model("EURUSD", "m", **CONFIGS)
    live = reg.start_run(model.id, "live", {}, {}, "cpu")  # this process: alive
    foreign = reg.start_run(model.id, "elsewhere", {}, {}, "cpu", host="another-host", pid=4242)
    assert reg.mark_stale_runs_interrupted() == []
    marked = reg.mark_stale_runs_interrupted(older_than=timedelta(0))
    assert [r.id for r in marked] == [foreign.id]
    assert "another-host" in (marked[0].error_message or "")
    assert reg.get_run(live.id).status == "running"


def test_starting_a_run_closes_runs_of_dead_processes(reg: Registry) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    model = reg.register_model("EURUSD", "m", **CONFIGS)
    orphan = reg.start_run(model.id, "orphan", {}, {}, "cpu", pid=int(done.stdout))
    assert reg.get_run(orphan.id).status == "running"
    reg.start_run(model.id, "next", {}, {}, "cpu")
    closed = reg.get_run(orphan.id)
    assert closed.status == "interrupted" and f"process {done.stdout.strip()}" in (
        closed.error_message or ""
    )


# --------------------------------------------------------------------------- inference logs


def test_log_inference_round_trip(reg: Registry) -> None:
    model = reg.register_model("EURUSD", "m", **CONFIGS)
    prediction = {"mean": {5: 1e-4, 15: -2e-4}, "std": {5: math.nan}, "direction": "up"}
    when = pd.Timestamp("2024-03-01 10:05", tz="Europe/Berlin")
    log = reg.log_inference(model.id, "eurusd", when, (5, 15), prediction, 12.5, "cpu", 1, 100)
    assert log.decision_time == datetime(2024, 3, 1, 9, 5, tzinfo=UTC)
    assert log.prediction == {
        "mean": {"5": 1e-4, "15": -2e-4},
        "std": {"5": None},
        "direction": "up",
    }
    stored = reg.list_inference_logs("EURUSD")
    assert [s.id for s in stored] == [log.id] and stored[0].decision_time == log.decision_time
    assert stored[0].horizons == [5, 15]
    assert reg.count_inference_logs(model.id) == 1
    with pytest.raises(RegistryError, match="belongs to EURUSD, not USDJPY"):
        reg.log_inference(model.id, "USDJPY", when, [5], {}, 1.0, "cpu")


# --------------------------------------------------------------------------- metrics


def test_metrics_latest_per_method_and_horizon(reg: Registry) -> None:
    model = reg.register_model("EURUSD", "m", **CONFIGS)
    other = reg.register_model("EURUSD", "other", **CONFIGS)
    window = ("2023-07-01", "2023-12-31")
    reg.record_metrics(model.id, "sssd", "EURUSD", 5, *window, {"crps": 2.0}, 100)
    reg.record_metrics(model.id, "sssd", "EURUSD", 5, *window, {"crps": 1.5, "cov90": 0.9}, 120)
    reg.record_metrics(model.id, "sssd", "EURUSD", 60, *window, {"crps": 3.0}, 100)
    reg.record_metrics(other.id, "sssd", "EURUSD", 5, *window, {"crps": 9.0}, 100)
    reg.record_metrics(None, "garch", "EURUSD", 5, *window, {"crps": 1.7, "dm_p": math.nan}, 120)
    latest = reg.latest_metrics("EURUSD", "m")
    assert [(r.model_name, r.method, r.horizon, r.n_forecasts) for r in latest] == [
        (None, "garch", 5, 120),
        ("m", "sssd", 5, 120),
        ("m", "sssd", 60, 100),
    ]
    assert latest[0].metrics == {"crps": 1.7, "dm_p": None}
    assert latest[1].metrics == {"crps": 1.5, "cov90": 0.9}
    assert latest[1].window_start == datetime(2023, 7, 1, tzinfo=UTC)
    assert len(reg.latest_metrics("EURUSD")) == 4
    with pytest.raises(NotFoundError, match="registered assets: EURUSD"):
        reg.latest_metrics("GBPUSD")
    with pytest.raises(RegistryError, match=r"window_end .* is before"):
        reg.record_metrics(None, "rw", "EURUSD", 5, "2024-01-02", "2024-01-01", {}, 0)
    with pytest.raises(RegistryError, match="belongs to EURUSD, not USDJPY"):
        reg.record_metrics(model.id, "sssd", "USDJPY", 5, *window, {}, 1)


def test_baseline_metrics_without_any_model(reg: Registry) -> None:
    reg.record_metrics(None, "rw_rolling", "GBPUSD", 15, "2023-01-01", "2023-02-01", {"crps": 1}, 5)
    rows = reg.latest_metrics("gbpusd")
    assert [(r.method, r.model_id, r.model_name) for r in rows] == [("rw_rolling", None, None)]


# --------------------------------------------------------------------------- show


def test_show_gathers_everything(reg: Registry, tmp_path: Path) -> None:
    model = reg.register_model("EURUSD", "m", **CONFIGS)
    reg.register_model("EURUSD", "n", **CONFIGS)
    run = reg.start_run(model.id, "r1", {}, {}, "cpu")
    reg.record_checkpoint(model.id, tmp_path / "b.pt", 3, True, 0.2, 0.3, {"crps": 1.0}, 5)
    reg.complete_run(run.id, 3, 4, 0.2, 0.3)
    reg.record_metrics(model.id, "sssd", "EURUSD", 5, "2023-07-01", "2023-08-01", {"crps": 1}, 9)
    reg.record_metrics(None, "ewma", "EURUSD", 5, "2023-07-01", "2023-08-01", {"crps": 2}, 9)
    reg.log_inference(
        model.id, "EURUSD", "2024-01-01T00:05:00Z", [5], {"mean": {"5": 0.0}}, 3.0, "cpu"
    )
    shown = registry_report(reg, "EURUSD", "m")
    assert shown["asset"] == "EURUSD" and len(shown["models"]) == 1
    entry = shown["models"][0]
    assert entry["model"]["model_name"] == "m"
    assert entry["best_checkpoint"]["path"] == str(tmp_path / "b.pt")
    assert [r["status"] for r in entry["runs"]] == ["completed"]
    assert [m["method"] for m in entry["latest_metrics"]] == ["sssd"]
    assert entry["inference"]["count"] == 1
    assert entry["inference"]["latest"]["decision_time"] == "2024-01-01T00:05:00+00:00"
    assert [m["method"] for m in shown["baseline_metrics"]] == ["ewma"]
    assert [e["model"]["model_name"] for e in registry_report(reg, "eurusd")["models"]] == [
        "m",
        "n",
    ]


def test_report_of_an_asset_evaluated_only_by_baselines(reg: Registry) -> None:
    reg.record_metrics(None, "ewma", "GBPUSD", 15, "2023-01-01", "2023-02-01", {"crps": 1}, 5)
    reg.record_metrics(None, "ewma", "GBPUSD", 15, "2023-02-01", "2023-03-01", {"crps": 2}, 6)
    shown = registry_report(reg, "gbpusd")
    assert shown["asset"] == "GBPUSD" and shown["models"] == []
    assert [(m["method"], m["n_forecasts"]) for m in shown["baseline_metrics"]] == [("ewma", 6)]
    assert [m.asset for m in reg.latest_baseline_metrics()] == ["GBPUSD"]
    with pytest.raises(NotFoundError, match="no model registered for asset 'USDJPY'"):
        registry_report(reg, "USDJPY")
