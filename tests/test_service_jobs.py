"""Jobs over HTTP: training in worker processes, cancel → interrupted → resumed to the same
weights as an uninterrupted run, evaluation with progress."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from forex_diffusion.models.checkpoint import load_checkpoint
from forex_diffusion.service.app import create_app
from service_utils import settings
from training_utils import tiny_config, two_month_store

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def _wait(client: TestClient, job_id: str, until: Any, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if until(job) or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def _final(job: dict[str, Any]) -> bool:
    return job["status"] in {"completed", "failed", "interrupted", "cancelled"}


def test_cancelled_training_is_interrupted_and_resumes_to_the_same_weights(
    fx_dir: Path, tmp_path: Path
) -> None:
    two_month_store(fx_dir, tmp_path)
    cfg = tiny_config(tmp_path)
    epochs = ["training.epochs=4"]
    with TestClient(create_app(settings(cfg, max_jobs=1))) as c:
        # a: uninterrupted
        a = c.post("/v1/jobs/train", json={"asset": "EURUSD", "model": "a", "overrides": epochs})
        assert a.status_code == 202 and a.json()["status"] in {"queued", "running"}
        # b waits for a's slot (max_jobs=1)
        b = c.post("/v1/jobs/train", json={"asset": "EURUSD", "model": "b", "overrides": epochs})
        assert b.json()["status"] == "queued"
        done = _wait(c, a.json()["id"], _final)
        assert done["status"] == "completed", done["log_tail"]
        assert done["progress"]["epoch"] == 3 and done["progress"]["epochs"] == 4
        assert done["progress"]["fraction"] == 1.0 and "train_loss" in done["progress"]["loss"]
        assert done["result"]["status"] == "completed" and done["log_tail"]
        # b: cancelled during its second epoch
        b_id = b.json()["id"]
        last = tmp_path / "checkpoints" / "EURUSD" / "b" / "last.ckpt"
        running = _wait(c, b_id, lambda j: _final(j) or last.exists())
        assert running["status"] == "running", running
        assert running["progress"]["epoch"] == 0 and running["eta_s"] is not None
        time.sleep(0.3)
        cancelled = c.delete(f"/v1/jobs/{b_id}").json()
        assert cancelled["status"] == "interrupted", cancelled["log_tail"]
        runs = c.get("/v1/models/EURUSD").json()["models"]
        by_name = {m["model"]["model_name"]: m for m in runs}
        assert [r["status"] for r in by_name["b"]["runs"]] == ["interrupted"]
        again = c.delete(f"/v1/jobs/{b_id}")
        assert again.status_code == 409 and again.json()["error"] == "JobError"
        # resumed from last.ckpt
        resumed = c.post(
            "/v1/jobs/train",
            json={"asset": "EURUSD", "model": "b", "overrides": epochs, "resume": True},
        ).json()
        finished = _wait(c, resumed["id"], _final)
        assert finished["status"] == "completed", finished["log_tail"]
        runs = c.get("/v1/models/EURUSD").json()["models"]
        statuses = [r["status"] for m in runs if m["model"]["model_name"] == "b" for r in m["runs"]]
        assert sorted(statuses) == ["completed", "interrupted"]
        listed = c.get("/v1/jobs").json()["jobs"]
        assert [j["status"] for j in listed] == ["completed", "interrupted", "completed"]
    root = tmp_path / "checkpoints" / "EURUSD"
    sa = load_checkpoint(root / "a" / "final.ckpt").model.state_dict()
    sb = load_checkpoint(root / "b" / "final.ckpt").model.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], rtol=0, atol=0, msg=f"{key} differs")


def test_evaluation_job_reports_progress(fx_dir: Path, tmp_path: Path) -> None:
    two_month_store(fx_dir, tmp_path)
    cfg = tiny_config(tmp_path)
    with TestClient(create_app(settings(cfg))) as c:
        job = c.post(
            "/v1/jobs/evaluate",
            json={
                "asset": "EURUSD",
                "start": "2019-03-18",
                "end": "2019-03-22",
                "baselines_only": True,
                "stride": 12,
            },
        ).json()
        done = _wait(c, job["id"], _final)
        assert done["status"] == "completed", done["log_tail"]
        assert done["kind"] == "evaluate" and done["progress"]["fraction"] == 1.0
        assert Path(done["result"]["report"]).is_file()
        assert done["result"]["summary"]
