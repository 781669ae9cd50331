"""``forex-diffusion registry ...`` and ``forex-diffusion db ...`` through typer's CliRunner."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from forex_diffusion.cli.main import app
from forex_diffusion.registry import Registry
from forex_diffusion.registry.db import ENV_DB_URL, head_revision

runner = CliRunner()
CONFIGS = {
    "architecture_config": {"d_model": 128},
    "training_config": {"epochs": 10},
    "feature_config": {"names": ["returns"]},
    "horizon_config": {"horizons": [5, 15, 60, 240]},
}


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


def _populate(url: str, tmp_path: Path) -> None:
    with Registry(url) as reg:
        model = reg.register_model("EURUSD", "sssd_v1", **CONFIGS)
        reg.register_model("EURUSD", "small", **CONFIGS)
        run = reg.start_run(model.id, "nightly", {"train": "2020"}, {"lr": 1e-3}, "cpu")
        reg.record_checkpoint(model.id, tmp_path / "best.pt", 12, True, 0.21, 0.3141, {}, 2048)
        reg.complete_run(run.id, 12, 20, 0.2, 0.3141)
        reg.record_metrics(
            model.id, "sssd", "EURUSD", 60, "2023-07-01", "2023-12-31", {"crps": 2.5}, 800
        )
        reg.record_metrics(
            None, "garch", "EURUSD", 60, "2023-07-01", "2023-12-31", {"crps": 2.9}, 800
        )


def test_db_upgrade_current_downgrade(registry_url: str) -> None:
    code, out = cli("db", "current", "--db-url", registry_url)
    assert code == 0 and "current (empty)" in out and "db upgrade" in out
    code, out = cli("db", "upgrade", "--db-url", registry_url)
    assert code == 0 and f"(empty) -> {head_revision()}" in out
    code, out = cli("db", "current", "--db-url", registry_url)
    assert code == 0 and f"current {head_revision()}" in out and "up to date" in out
    code, out = cli("db", "downgrade", "base", "--db-url", registry_url)
    assert code == 0 and f"{head_revision()} -> (empty)" in out
    code, out = cli("db", "upgrade", "--revision", "bogus", "--db-url", registry_url)
    assert code == 2 and "Known revisions" in out


def test_registry_list(registry_url: str, tmp_path: Path) -> None:
    code, out = cli("registry", "list", "--db-url", registry_url)
    assert code == 0 and "no models registered" in out
    _populate(registry_url, tmp_path)
    code, out = cli("registry", "list", "--db-url", registry_url)
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].split()[:4] == ["ID", "ASSET", "MODEL", "TYPE"]
    row = next(line for line in lines if "sssd_v1" in line).split()
    assert row[1:7] == ["EURUSD", "sssd_v1", "sssd", "0.3141", "12", "completed"]
    code, out = cli("registry", "list", "--db-url", registry_url, "--json")
    payload = json.loads(out)
    assert [m["model_name"] for m in payload] == ["small", "sssd_v1"]
    assert payload[1]["best_checkpoint"]["path"] == str(tmp_path / "best.pt")
    assert payload[0]["best_checkpoint"] is None and payload[1]["last_run"]["status"] == "completed"
    code, out = cli("registry", "list", "--asset", "gbpusd", "--db-url", registry_url)
    assert code == 0 and "for asset GBPUSD" in out and "registered assets: EURUSD" in out


def test_registry_show(registry_url: str, tmp_path: Path) -> None:
    _populate(registry_url, tmp_path)
    code, out = cli("registry", "show", "EURUSD", "--db-url", registry_url)
    assert code == 0, out
    for expected in ("model small", "model sssd_v1", str(tmp_path / "best.pt"), "nightly"):
        assert expected in out
    assert "completed" in out and "garch" in out and "25000.000" in out  # CRPS 2.5 in bp
    code, out = cli("registry", "show", "eurusd", "sssd_v1", "--json", "--db-url", registry_url)
    data = json.loads(out)
    assert [e["model"]["model_name"] for e in data["models"]] == ["sssd_v1"]
    assert data["models"][0]["runs"][0]["run_name"] == "nightly"
    assert [m["method"] for m in data["baseline_metrics"]] == ["garch"]
    code, out = cli("registry", "show", "GBPUSD", "--db-url", registry_url)
    assert code == 2 and "no model registered for asset 'GBPUSD'" in out
    assert "registered assets: EURUSD" in out
    code, out = cli("registry", "show", "EURUSD", "big", "--db-url", registry_url)
    assert code == 2 and "models of EURUSD: small, sssd_v1" in out


def test_registry_mark_stale(registry_url: str) -> None:
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead_pid = int(finished.stdout)
    with Registry(registry_url) as reg:
        model = reg.register_model("EURUSD", "m", **CONFIGS)
        live = reg.start_run(model.id, "alive", {}, {}, "cpu")
        run = reg.start_run(model.id, "crashed", {}, {}, "cpu", pid=dead_pid)
    code, out = cli("registry", "mark-stale", "--db-url", registry_url)
    assert code == 0 and f"run {run.id} (EURUSD/m crashed): interrupted" in out
    assert "1 run(s) marked interrupted" in out
    with Registry(registry_url) as reg:
        assert reg.get_run(run.id).status == "interrupted"
        assert reg.get_run(live.id).status == "running"


def test_unreachable_database_is_a_clean_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql+psycopg://fx:hunter2@127.0.0.1:{port}/fx"
    code, out = cli("registry", "list", "--db-url", url)
    assert code == 2 and "cannot connect" in out and "fx:***@127.0.0.1" in out
    assert "hunter2" not in out


def test_url_from_env_and_from_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, default_config_path: Path
) -> None:
    env_db = tmp_path / "env" / "reg.db"
    monkeypatch.setenv(ENV_DB_URL, f"sqlite:///{env_db}")
    code, out = cli("db", "upgrade")
    assert code == 0 and env_db.is_file() and str(env_db) in out
    monkeypatch.delenv(ENV_DB_URL)
    artifacts = tmp_path / "art"
    override = f"paths.artifacts_dir={artifacts}"
    code, out = cli("registry", "list", "-c", str(default_config_path), "-o", override)
    assert code == 0 and (artifacts / "registry.db").is_file()
    code, out = cli("registry", "list", "-c", str(tmp_path / "missing.yaml"))
    assert code == 2 and "config file not found" in out


def test_baseline_only_evaluations_are_listed_and_shown(registry_url: str, tmp_path: Path) -> None:
    with Registry(registry_url) as reg:
        for method, crps in (("garch_t", 3.25), ("rw_rolling", 3.75)):
            reg.record_metrics(
                None, method, "GBPUSD", 60, "2019-06-01", "2019-06-30", {"crps": crps}, 77
            )
    code, out = cli("registry", "list", "--db-url", registry_url)
    assert code == 0 and "no models registered" in out
    assert "baseline evaluations (2)" in out
    rows = [line.split() for line in out.splitlines() if "GBPUSD" in line]
    assert [r[:3] for r in rows] == [["GBPUSD", "garch_t", "60"], ["GBPUSD", "rw_rolling", "60"]]
    assert "crps=3.25" in out and "2019-06-01..2019-06-30" in out
    code, out = cli("registry", "show", "gbpusd", "--db-url", registry_url)
    assert code == 0, out
    assert "baseline evaluations only" in out and "baseline metrics (2)" in out
    assert "garch_t" in out and "37500.000" in out  # CRPS 3.75 in bp
    code, out = cli("registry", "show", "GBPUSD", "--json", "--db-url", registry_url)
    data = json.loads(out)
    assert data["models"] == []
    assert [m["method"] for m in data["baseline_metrics"]] == ["garch_t", "rw_rolling"]
    code, out = cli("registry", "show", "GBPUSD", "sssd_v1", "--db-url", registry_url)
    assert code == 2 and "no model registered for asset 'GBPUSD'" in out
    _populate(registry_url, tmp_path)
    code, out = cli("registry", "list", "--db-url", registry_url)
    assert code == 0 and "baseline evaluations (3)" in out
    assert ["EURUSD", "garch", "60"] in [line.split()[:3] for line in out.splitlines()]
    code, out = cli("registry", "list", "--asset", "eurusd", "--db-url", registry_url)
    assert code == 0 and "baseline evaluations (1)" in out and "GBPUSD" not in out
