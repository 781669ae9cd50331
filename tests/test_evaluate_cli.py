"""``forex-diffusion evaluate`` through typer's CliRunner: outputs, files, registry, exit codes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from forex_diffusion.cli.main import app
from forex_diffusion.registry.db import ENV_DB_URL
from forex_diffusion.registry.repository import Registry
from walk_forward_utils import (
    EVAL_END,
    EVAL_START,
    MODEL_NAME,
    config_overrides,
    eval_config,
    real_eurusd,
    write_store,
    write_untrained_checkpoint,
)

runner = CliRunner()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, fx_dir: Path) -> Path:
    base = tmp_path_factory.mktemp("evaluate_cli")
    candles = real_eurusd(fx_dir)
    write_store(base / "store", candles)
    write_untrained_checkpoint(eval_config(base), candles)
    return base


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_DB_URL, raising=False)
    monkeypatch.delenv("FOREX_DIFFUSION_DATA_DIR", raising=False)


def cli(root: Path, *args: str) -> tuple[int, str]:
    overrides = [x for o in config_overrides(root) for x in ("--override", o)]
    result = runner.invoke(app, ["evaluate", "--asset", "EURUSD", *args, *overrides])
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


def _registry(root: Path) -> Registry:
    return Registry(f"sqlite:///{root / 'artifacts' / 'registry.db'}")


def test_baselines_only(root: Path) -> None:
    out = root / "out_baselines"
    code, text = cli(
        root, "--start", EVAL_START, "--end", EVAL_END, "--baselines-only", "--out", str(out)
    )
    assert code == 0, text
    assert "baselines only (no model)" in text
    assert "| Horizon | Forecaster | CRPS (bp) | Skill vs best baseline |" in text
    assert text.count("| 60 min |") == 4 and "(best baseline)" in text
    assert "no model was evaluated" in text
    assert f"Report: {out / 'report.md'}" in text
    assert "Registry: 16 rows in sssd_performance_metrics" in text
    for name in ("report.md", "metrics.json", "fan_chart.png", "reliability.png", "pit_histogram.png", "crps_by_hour.png"):  # fmt: skip
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stride"] == 1  # the default: every bar, as served live
    diag = metrics["diagnostics"]
    assert diag["dm_kernel"] == metrics_kernel(root)
    assert isinstance(diag["garch_refit_failures"], int) and diag["garch_refits"] >= 1
    report = (out / "report.md").read_text()
    assert f"{diag['garch_refit_failures']} of {diag['garch_refits']} rolling refits" in report
    assert f"long-run variance kernel '{diag['dm_kernel']}'" in report
    # the baselines were tuned on the config's training range, which the store holds in full
    assert "Baseline tuning data actually used: 2019-01-01 22:" in report
    assert "WARNING" not in report
    with _registry(root) as reg:
        rows = [m for m in reg.latest_metrics("EURUSD") if m.model_id is None]
    assert len(rows) == 16
    assert {m.window_start for m in rows} == {pd.Timestamp(EVAL_START, tz="UTC").to_pydatetime()}


def test_model_with_stride_and_samples(root: Path) -> None:
    """A checkpoint the registry does not know yet: evaluating it registers the model."""
    out = root / "out_model"
    code, text = cli(
        root, "--start", EVAL_START, "--end", EVAL_END, "--model", MODEL_NAME,
        "--stride", "48", "--samples", "4", "--out", str(out),
    )  # fmt: skip
    assert code == 0, text
    assert f"**{MODEL_NAME}** (model)" in text and "every 48 × 5 min" in text
    assert "Registry: 20 rows in sssd_performance_metrics" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model_name"] == MODEL_NAME and metrics["stride"] == 48
    assert "4 samples per forecast" in (out / "report.md").read_text()
    with _registry(root) as reg:
        model = reg.get_model("EURUSD", MODEL_NAME)
        rows = [m for m in reg.latest_metrics("EURUSD", MODEL_NAME) if m.model_id == model.id]
    assert {(m.method, m.horizon) for m in rows} == {("sssd", h) for h in (5, 15, 60, 240)}
    assert all(m.metrics["stride"] == 48 and m.metrics["num_samples"] == 4 for m in rows)


def metrics_kernel(root: Path) -> str:
    return eval_config(root).evaluation.dm_kernel


def test_short_tuning_history_is_named_and_warned(root: Path) -> None:
    """Tuning on 365 days before a start the store holds two weeks of: the note says so."""
    out = root / "out_short_tuning"
    code, text = cli(
        root, "--start", "2019-01-15", "--end", "2019-01-16", "--baselines-only", "--no-record",
        "--out", str(out), "--override", "evaluation.tuning_days=365",
    )  # fmt: skip
    assert code == 0, text
    report = (out / "report.md").read_text()
    assert "Baselines tuned on the 365 days before the evaluation start" in report
    assert "Baseline tuning data actually used: 2019-01-01 22:" in report
    assert "WARNING: the store holds only 13 of the 365 days" in report


def test_no_record(root: Path) -> None:
    out = root / "out_no_record"
    args = ("--start", "2019-01-29", "--end", "2019-01-30", "--baselines-only", "--out", str(out))
    code, text = cli(root, *args, "--stride", "48", "--no-record")
    assert code == 0, text
    assert "Registry:" not in text and (out / "report.md").is_file()
    # off a terminal, the baselines' stages are one summary line each, timing every baseline
    tuned = re.search(
        r"^tuning (\d) baselines on .+: (\d)/(\d) done in [\d.]+ s; (.+)$", text, re.M
    )
    assert tuned is not None and tuned[1] == tuned[2] == tuned[3], text
    names = re.findall(r"(\w+) [\d.]+ s", tuned[4])
    assert len(names) == int(tuned[1]) and "ewma_seasonal" in names, tuned[4]
    forecast = re.search(
        r"^baseline forecasts at [\d,]+ decision times: (\d)/(\d) done in [\d.]+ s; (.+)$",
        text,
        re.M,
    )
    assert forecast is not None and forecast[1] == forecast[2] == tuned[1], text
    assert re.findall(r"(\w+) [\d.]+ s", forecast[3]) == names
    with _registry(root) as reg:
        starts = {m.window_start for m in reg.latest_metrics("EURUSD")}
    assert pd.Timestamp("2019-01-29", tz="UTC").to_pydatetime() not in starts


def test_refuses_a_range_the_model_has_seen(root: Path) -> None:
    code, text = cli(root, "--start", "2019-01-15", "--end", "2019-01-31", "--model", MODEL_NAME)
    assert code == 2
    assert "refusing to evaluate model" in text and "2019-01-15 → 2019-01-31" in text
    assert "training range 2019-01-01 → 2019-01-20" in text
    assert "validation range 2019-01-21 → 2019-01-25" in text
    assert not (root / "reports").exists()  # nothing written


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "x", "--baselines-only"], "exclude each other"),
        (["--model", "nope"], "no checkpoint for asset 'EURUSD' model 'nope'"),
    ],
)
def test_bad_model_options(root: Path, args: list[str], message: str) -> None:
    code, text = cli(root, "--start", EVAL_START, "--end", EVAL_END, *args)
    assert code == 2 and message in text


def test_bad_ranges(root: Path) -> None:
    code, text = cli(root, "--start", "2019-02-03", "--end", "2019-01-28", "--baselines-only")
    assert code == 2 and "not after start" in text
    code, text = cli(root, "--start", "someday", "--end", "2019-01-28", "--baselines-only")
    assert code == 2 and "YYYY-MM-DD" in text
    code, text = cli(root, "--start", "2020-03-02", "--end", "2020-03-06", "--baselines-only")
    assert code == 2 and "the store holds 2019-01" in text
    code, text = cli(root, "--start", EVAL_START, "--end", EVAL_END, "--stride", "0")
    assert code == 2 and "--stride" in text
