"""The main job end to end (what `make quickstart` runs), on the synthetic market."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from forex_diffusion.cli.main import app
from forex_diffusion.cli.quickstart_cmd import split_overrides
from forex_diffusion.config.sssd_config import DEFAULT_CONFIG_PATH, load_sssd_config
from forex_diffusion.registry import open_registry


def test_split_overrides_are_ordered_and_cover_the_data() -> None:
    first, last = pd.Timestamp("2023-01-02", tz="UTC"), pd.Timestamp("2023-04-30 23:59", tz="UTC")
    cfg = load_sssd_config(DEFAULT_CONFIG_PATH, overrides=split_overrides(first, last))
    s = cfg.data.splits
    assert str(s.train.start) == "2023-01-02" and str(s.test.end) == "2023-04-30"
    assert s.train.end < s.val.start <= s.val.end < s.test.start


@pytest.mark.slow
def test_quickstart_end_to_end(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["quickstart", "--workdir", str(tmp_path), "--epochs", "1"])
    assert res.exit_code == 0, res.output
    for step in ("1/4 data", "2/4 train", "3/4 predict", "4/4 evaluate"):
        assert step in res.output
    assert "SYNTHETIC" in res.output
    assert "240 min" in res.output  # the forecast table
    assert "| Horizon | Forecaster | CRPS" in res.output  # the evaluation's first table
    assert (tmp_path / "reports" / "fan.png").is_file()
    assert (tmp_path / "reports" / "SYNTH_test" / "report.md").is_file()
    assert "nan" not in res.output.lower().replace("nanosec", "")
    report = tmp_path / "reports" / "SYNTH_test"
    metrics = json.loads((report / "metrics.json").read_text())
    rows = metrics["metrics"]
    forecasters = {r["forecaster"] for r in rows}
    assert {"quickstart", "quickstart (raw)", "pool", "lightgbm"} <= forecasters
    assert len(rows) == 4 * len(forecasters)
    for r in rows:  # every number the report shows is a number
        for key in ("crps", "coverage"):
            values = r[key].values() if isinstance(r[key], dict) else [r[key]]
            assert all(v is not None and math.isfinite(v) for v in values), (r["forecaster"], key)
    text = (report / "report.md").read_text()
    first = text[text.index("| Horizon | Forecaster | CRPS") :].split("\n\n")[0]  # the first table
    for h in (5, 15, 60, 240):
        assert first.count(f"| {h} min |") == len(forecasters), h
    cfg = load_sssd_config(DEFAULT_CONFIG_PATH, overrides=[f"paths.artifacts_dir={tmp_path}"])
    with open_registry(cfg) as reg:
        runs = reg.list_runs(asset="SYNTH")
        assert [r.status for r in runs] == ["completed"] and runs[0].epochs == 1
        best = reg.best_checkpoint("SYNTH", "quickstart")
        assert best is not None and Path(best.path).is_file()
        model_rows = [m for m in reg.latest_metrics("SYNTH", "quickstart") if m.model_id]
        assert {m.horizon for m in model_rows} == {5, 15, 60, 240}
        assert all(math.isfinite(m.metrics["crps"]) for m in model_rows)
