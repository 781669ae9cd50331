"""The endpoints the browser UI adds to the service, and the pages themselves (TestClient)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from forex_diffusion.config.sssd_config import SSSDConfig
from forex_diffusion.service.app import create_app
from forex_diffusion.service.ui_job_routes import epoch_history, latest_step
from forex_diffusion.ui import PAGES
from forex_diffusion.ui.pages import HERE
from service_utils import settings
from ui_utils import ASSET, trained_synthetic


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> SSSDConfig:
    return trained_synthetic(tmp_path_factory.mktemp("ui-api"))


@pytest.fixture(scope="module")
def client(trained: SSSDConfig) -> Iterator[TestClient]:
    with TestClient(create_app(settings(trained))) as c:
        yield c


def _error(response: Any, status: int, name: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == name
    message: str = body["message"]
    return message


def test_pages_and_static_files_are_served_and_self_contained(client: TestClient) -> None:
    for page in PAGES:
        r = client.get(page.path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert f"<title>{page.title} · forex-diffusion</title>" in r.text
        for src in re.findall(r'(?:src|href)="(/ui/static/[^"]+)"', r.text):
            assert client.get(src).status_code == 200, src
        assert f'/ui/static/{page.script}"' in r.text
    license_text = client.get("/ui/static/vendor/LICENSE-lightweight-charts.txt").text
    assert "Apache License" in license_text and "Version 2.0" in license_text
    vendored = client.get("/ui/static/vendor/lightweight-charts.standalone.production.js").text
    assert "Lightweight Charts" in vendored and "v4.2.3" in vendored
    # offline: no file of ours loads anything from another host
    for path in HERE.rglob("*"):
        if path.suffix in (".html", ".js", ".css") and "vendor" not in path.parts:
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"""(src|href|url)\s*[=(]\s*["']?(https?:)?//""", text), path


def test_config_schema_presets_and_validation(client: TestClient, trained: SSSDConfig) -> None:
    meta = client.get("/v1/config/schema").json()
    assert "training" in meta["schema"]["properties"]
    assert meta["config"]["training"]["epochs"] == trained.training.epochs
    assert {"service", "cpu_small"} <= set(meta["presets"])
    assert meta["presets"]["service"] == trained.to_dict()
    assert meta["presets"]["cpu_small"]["paths"] == trained.to_dict()["paths"]
    assert meta["fixed_sections"] == ["paths"]

    typo = client.post(
        "/v1/config/validate", json={"asset": ASSET, "overrides": ["training.epochz=3"]}
    )
    assert "training.epochz: unknown key; did you mean 'training.epochs'?" in _error(
        typo, 422, "ConfigError"
    )
    bad = client.post(
        "/v1/config/validate", json={"asset": ASSET, "overrides": ["training.batch_size=0"]}
    )
    assert "training.batch_size: Input should be greater than or equal to 1" in _error(
        bad, 422, "ConfigError"
    )
    fixed = client.post(
        "/v1/config/validate", json={"asset": ASSET, "overrides": ["paths.data_dir=/etc"]}
    )
    assert "paths.* cannot be changed over HTTP" in _error(fixed, 422, "ConfigError")
    ok = client.post(
        "/v1/config/validate",
        json={"asset": ASSET, "model": "m2", "overrides": ["training.epochs=7"]},
    )
    assert ok.status_code == 200
    assert ok.json()["config"]["training"]["epochs"] == 7
    assert ok.json()["config"]["model"]["name"] == "m2"


def test_device_check(client: TestClient) -> None:
    import torch

    d = client.get("/v1/device", params={"precision": "auto"}).json()
    assert d["cpu_count"] >= 1 and d["torch_threads"] >= 1
    assert d["cuda_available"] == torch.cuda.is_available()
    assert len(d["cuda_devices"]) == (torch.cuda.device_count() if d["cuda_available"] else 0)
    if not d["cuda_available"]:
        assert d["precision"] == "32" and d["accelerator"] == "cpu"
    else:
        bf16 = torch.cuda.is_bf16_supported()
        assert d["precision"] == ("bf16-mixed" if bf16 else "16-mixed")
        assert all({"name", "memory_gib", "bf16"} <= set(g) for g in d["cuda_devices"])
    assert client.get("/v1/device", params={"precision": "bf16-mixed"}).json()["precision"] == (
        "bf16-mixed"
    )
    _error(client.get("/v1/device", params={"precision": "64"}), 422, "RequestValidationError")


def test_data_summary_and_candles(client: TestClient) -> None:
    data = client.get("/v1/data").json()
    (eurusd,) = [a for a in data["assets"] if a["asset"] == ASSET]
    assert eurusd["base_timeframe"] == "1m" and eurusd["bars"] > 50_000
    assert eurusd["first"].startswith("2021-02-01") and eurusd["closures"] >= 7
    assert "auto" in data["formats"] and "histdata" in data["formats"]

    r = client.get(f"/v1/candles/{ASSET}", params={"bars": 30, "end": "2021-03-10T12:00:00Z"})
    candles = r.json()["candles"]
    assert len(candles) == 30
    times = [c["time"] for c in candles]
    assert times == sorted(times) and all(b - a == 300 for a, b in itertools.pairwise(times))
    assert times[-1] + 300 <= 1615377600  # closed by the end (2021-03-10 12:00 UTC)
    assert all(c["low"] <= min(c["open"], c["close"]) <= c["high"] for c in candles)
    span = client.get(
        f"/v1/candles/{ASSET}",
        params={"start": "2021-03-10T12:00:00Z", "end": "2021-03-10T13:00:00Z"},
    ).json()["candles"]
    assert len(span) == 12 and span[0]["time"] == 1615377600


def _csv(path: Path, rows: list[str]) -> Path:
    path.write_text("timestamp,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
    return path


def test_import_upload_reports_files_and_bad_rows(client: TestClient, tmp_path: Path) -> None:
    good = _csv(
        tmp_path / "a.csv",
        [f"2021-03-01 10:{m:02d}:00,1.39,1.3905,1.3895,1.3901,1" for m in range(30)],
    )
    bad = _csv(
        tmp_path / "b.csv",
        [
            "2021-03-01 11:00:00,1.39,1.3905,1.3895,1.3901,1",
            "2021-03-01 11:01:00,1.39,1.38,1.3895,1.39,1",
        ],
    )

    def upload(skip: bool) -> Any:
        files = [("files", (p.name, p.read_bytes(), "text/csv")) for p in (good, bad)]
        return client.post(
            "/v1/data/import",
            data={"asset": "gbpusd", "skip_bad": str(skip).lower()},
            files=files,
        )

    refused = _error(upload(False), 422, "DataError")
    assert "b.csv:3" in refused and "fxd-import" not in refused
    assert "GBPUSD" not in [a["asset"] for a in client.get("/v1/data").json()["assets"]]
    report = upload(True).json()
    assert report["asset"] == "GBPUSD" and report["rows_written"] == 31
    assert [f["file"] for f in report["files"]] == ["a.csv", "b.csv"]
    assert [f["bad_rows"] for f in report["files"]] == [0, 1]
    assert len(report["bad_rows"]) == 1 and report["bad_rows"][0].startswith("b.csv:3: ")
    again = upload(True).json()
    assert again["rows_written"] == 0 and again["already_stored"] == 31
    assert "GBPUSD" in [a["asset"] for a in client.get("/v1/data").json()["assets"]]


def test_run_log_resume_refusal_and_stale_runs(client: TestClient) -> None:
    shown = client.get(f"/v1/models/{ASSET}").json()
    run = shown["models"][0]["runs"][0]
    assert run["status"] == "completed"
    log = client.get(f"/v1/runs/{run['id']}/log").json()
    assert "epoch 0: train_loss=" in log["text"]
    message = _error(client.post(f"/v1/runs/{run['id']}/resume"), 409, "JobError")
    assert "only an interrupted run can be resumed" in message
    _error(client.get("/v1/runs/99999/log"), 404, "NotFoundError")
    assert client.post("/v1/runs/mark-stale").json() == {"marked": []}


def test_job_details_of_unknown_jobs_are_404(client: TestClient) -> None:
    _error(client.get("/v1/jobs/abc123/history"), 404, "NotFoundError")
    _error(client.get("/v1/jobs/abc123/report"), 404, "NotFoundError")
    _error(client.get("/v1/jobs/abc123/report/other.png"), 404, "NotFoundError")


def test_epoch_history_parses_every_epoch_line() -> None:
    text = (
        "2026 | INFO | epoch 0: train_loss=0.90000, val_loss=1.10000, val_coverage90=0.93750\n"
        "noise\n"
        "2026 | INFO | epoch 0: new best val_loss 1.10000\n"
        "2026 | INFO | epoch 1: train_loss=0.80000, val_loss=nan, val_crps=0.31000\n"
    )
    rows = epoch_history(text)
    assert [r["epoch"] for r in rows] == [0.0, 1.0]
    assert rows[0]["train_loss"] == 0.9 and rows[0]["val_coverage90"] == 0.9375
    assert rows[1]["val_crps"] == 0.31


def test_latest_step_is_the_last_step_line() -> None:
    text = (
        "INFO | step 3: batch 3/12 of epoch 0\n"
        "INFO | epoch 0: train_loss=0.9\n"
        "INFO | step 17: batch 5/12 of epoch 1\n"
    )
    assert latest_step(text) == {"step": 17, "batch": 5, "batches": 12, "epoch": 1}
    assert latest_step("INFO | epoch 0: train_loss=0.9\n") is None


def test_algorithms_and_ensemble_requests_are_checked(client: TestClient) -> None:
    algs = client.get("/v1/algorithms").json()["algorithms"]
    assert algs[0]["label"] == "SSSD Diffusion"
    ensemble = next(a for a in algs if a["id"] == "stacking_ensemble")
    assert ensemble["endpoint"] == "/v1/jobs/ensemble"
    assert {"start", "end", "horizon", "n_splits"} <= set(ensemble["schema"]["properties"])
    body = {"asset": ASSET, "start": "2021-03-23", "end": "2021-03-22"}
    assert "is not after start" in _error(
        client.post("/v1/jobs/ensemble", json=body), 422, "ConfigError"
    )
    typo = {"asset": ASSET, "start": "2021-03-22", "end": "2021-03-23", "overrides": ["x.y=1"]}
    assert "x: unknown key" in _error(
        client.post("/v1/jobs/ensemble", json=typo), 422, "ConfigError"
    )
    unknown = {"asset": ASSET, "start": "2021-03-22", "end": "2021-03-23", "n_split": 2}
    _error(client.post("/v1/jobs/ensemble", json=unknown), 422, "RequestValidationError")
    assert client.get("/v1/jobs").json()["jobs"] == []
