"""``evaluate --export``: one row per decision time × horizon × forecaster, the columns a user
needs for their own analysis, named in the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from forex_diffusion.cli.main import app
from walk_forward_utils import config_overrides, eval_config, real_eurusd, write_store


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, fx_dir: Path) -> Path:
    base = tmp_path_factory.mktemp("export_cli")
    write_store(base / "store", real_eurusd(fx_dir))
    return base


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_export_columns_rows_and_report_note(root: Path, suffix: str) -> None:
    out, export = root / f"out{suffix}", root / f"forecasts{suffix}"
    overrides = [x for o in config_overrides(root) for x in ("--override", o)]
    args = [
        "evaluate", "--asset", "EURUSD", "--start", "2019-01-29", "--end", "2019-01-30",
        "--baselines-only", "--no-record", "--stride", "24", "--out", str(out),
        "--export", str(export), *overrides,
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"Forecasts: {export}" in result.output
    frame = pd.read_parquet(export) if suffix == ".parquet" else pd.read_csv(export)
    metrics = json.loads((out / "metrics.json").read_text())
    cfg = eval_config(root)
    levels = [f"q{q:g}" for q in cfg.evaluation.quantile_levels]
    expected = ["decision_time", "horizon_min", "forecaster", "label", "last_close", "realised"]
    expected += ["realised_change", "realised_pips", "mean", "std", *levels, "pit", "crps"]
    assert list(frame.columns) == expected
    forecasters = sorted(frame["forecaster"].unique())
    assert len(forecasters) == len(cfg.evaluation.baselines)
    n, horizons = metrics["n_decisions"], metrics["horizons"]
    assert len(frame) == n * len(horizons) * len(forecasters)
    assert sorted(frame["horizon_min"].unique()) == horizons
    assert frame["pit"].between(0, 1).all() and (frame["crps"] > 0).all()
    # the per-row CRPS averages to the report's CRPS
    for name in forecasters:
        for h in horizons:
            rows = frame[(frame["forecaster"] == name) & (frame["horizon_min"] == h)]
            reported = next(
                m["crps"]
                for m in metrics["metrics"]
                if m["forecaster"] == name and m["horizon"] == h
            )
            assert np.isclose(rows["crps"].mean(), reported, rtol=1e-9)
    assert str(export) in (out / "report.md").read_text()


def test_export_refuses_other_suffixes(root: Path) -> None:
    overrides = [x for o in config_overrides(root) for x in ("--override", o)]
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--asset",
            "EURUSD",
            "--start",
            "2019-01-29",
            "--end",
            "2019-01-29",
            "--baselines-only",
            "--no-record",
            "--stride",
            "48",
            "--out",
            str(root / "x"),
            "--export",
            str(root / "f.xlsx"),
            *overrides,
        ],
    )
    assert result.exit_code == 2 and ".parquet or .csv" in result.output
