"""The predict command as a trader uses it: JSON-only stdout, same seed same forecast, the
table and CSV showing the JSON's numbers, a copied artifacts folder forecasting through its own
registry, and the fan chart."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from forex_diffusion.cli.main import app
from forex_diffusion.config.sssd_config import SSSDConfig
from forex_diffusion.models.checkpoint import load_checkpoint
from forex_diffusion.training.data_module import SSSDDataModule
from forex_diffusion.training.train_sssd import SSSDTrainer
from import_probe import modules_after
from training_utils import tiny_config, two_month_store

ASOF = "2019-03-20T12:00Z"


@pytest.fixture(scope="module")
def trained(fx_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SSSDConfig]:
    root = tmp_path_factory.mktemp("cli_predict")
    data_dir = two_month_store(fx_dir, root)
    cfg = tiny_config(
        root,
        "training.epochs=1",
        "training.max_train_batches_per_epoch=4",
        f"paths.checkpoint_dir={root / 'sssd' / 'checkpoints'}",
    )
    result = SSSDTrainer(cfg).train(SSSDDataModule(data_path=data_dir, config=cfg))
    assert result.best_checkpoint is not None
    return root, cfg


def _args(root: Path, *extra: str) -> list[str]:
    return [
        "predict", "--asset", "EURUSD", "--asof", ASOF, "--samples", "64",
        "--data-dir", str(root / "data"), "--artifacts-dir", str(root), *extra,
    ]  # fmt: skip


def _run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(app, list(args))
    return res.exit_code, res.stdout, res.stderr


def test_json_is_the_only_stdout_even_with_a_plot(trained, tmp_path: Path) -> None:
    root, _ = trained
    code, out, err = _run(*_args(root, "--format", "json", "--plot", str(tmp_path / "f.png")))
    assert code == 0, err
    data = json.loads(out)  # nothing else on stdout
    assert "fan chart written to" in err and (tmp_path / "f.png").stat().st_size > 10_000
    assert set(data["prob_up"]) == {"5", "15", "60", "240"}
    assert data["units"]["levels"].startswith("price levels")
    for h in ("5", "240"):
        assert data["levels"]["q50"][h] == pytest.approx(data["last_close"] + data["q50"][h])
        assert data["pips"]["mean"][h] == pytest.approx(data["mean"][h] / data["pip_size"])
        p = data["prob_up"][h]
        assert data["confidence"][h] == pytest.approx(max(p, 1 - p))
        assert data["mc_se"]["prob_up"][h] == pytest.approx((p * (1 - p) / 64) ** 0.5)


def test_predict_imports_only_what_a_forecast_needs(trained) -> None:
    """A forecast never imports training (lightning), scipy (the normal CDF comes from
    torch.special), plotting without --plot, nor the registry's migrations."""
    root, _ = trained
    modules, out = modules_after(*_args(root, "--format", "json", "--seed", "1"))
    assert json.loads(out)["seed"] == 1
    assert {"torch", "pandas", "sqlalchemy", "yaml"} <= modules  # the probe sees them
    heavy = {"lightning", "pytorch_lightning", "scipy", "scipy.special", "matplotlib"}
    heavy |= {"alembic", "mlflow"}
    assert not heavy & modules, sorted(heavy & modules)


def test_same_seed_same_forecast_and_no_seed_differs(trained) -> None:
    root, _ = trained

    def forecast(*extra: str) -> dict[str, object]:
        code, out, err = _run(*_args(root, "--format", "json", *extra))
        assert code == 0, err
        data = json.loads(out)
        data.pop("inference_time_ms")
        return data

    first, again = forecast("--seed", "7"), forecast("--seed", "7")
    assert first == again and first["seed"] == 7  # bit-identical numbers
    other = forecast("--seed", "8")
    assert other["mean"] != first["mean"]
    unseeded = forecast()
    assert unseeded["seed"] is None and unseeded["mean"] != first["mean"]


def test_table_and_csv_show_the_json_numbers(trained) -> None:
    root, _ = trained
    _, out, _ = _run(*_args(root, "--format", "json", "--seed", "3"))
    data = json.loads(out)
    code, table, err = _run(*_args(root, "--seed", "3"))
    assert code == 0, err
    assert "prob_up" in table and "confidence = P(the more likely direction)" in table
    for h in data["horizons"]:
        key = str(h)
        assert f"{data['levels']['q05'][key]:.5f}" in table
        assert f"{data['levels']['q95'][key]:.5f}" in table
        assert f"{data['prob_up'][key]:.1%}" in table
        assert f"{data['pips']['mean'][key]:+.1f} ± {data['pips']['std'][key]:.1f}" in table
    code, text, err = _run(*_args(root, "--format", "csv", "--seed", "3"))
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["horizon_min"]) for r in rows] == data["horizons"]
    for r in rows:
        key = r["horizon_min"]
        assert float(r["prob_up"]) == data["prob_up"][key]
        assert float(r["q95_level"]) == data["levels"]["q95"][key]
        assert float(r["mean_change"]) == data["mean"][key]


def test_a_copied_artifacts_folder_forecasts_through_its_registry(trained, tmp_path: Path) -> None:
    root, _ = trained
    with sqlite3.connect(root / "registry.db") as db:
        stored = [p for (p,) in db.execute("SELECT path FROM sssd_checkpoints")]
    assert stored and all(not Path(p).is_absolute() for p in stored)  # relative to the root
    copy = tmp_path / "moved"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("data"))
    shutil.rmtree(root / "sssd" / "checkpoints" / "EURUSD", ignore_errors=False)
    try:
        code, out, err = _run(
            "predict", "--asset", "EURUSD", "--asof", ASOF, "--samples", "16", "--format",
            "json", "--data-dir", str(root / "data"), "--artifacts-dir", str(copy),
        )  # fmt: skip
        assert code == 0, err
        assert json.loads(out)["asset"] == "EURUSD"
        code, out, _ = _run("registry", "show", "EURUSD", "--artifacts-dir", str(copy), "--json")
        paths = [c["path"] for c in json.loads(out)["models"][0]["checkpoints"]]
        assert paths and all(p.startswith(str(copy)) for p in paths)
    finally:
        shutil.copytree(
            copy / "sssd" / "checkpoints" / "EURUSD", root / "sssd" / "checkpoints" / "EURUSD"
        )


def test_calibrate_fits_the_model_its_flags_name_with_the_settings_given(
    trained, tmp_path: Path
) -> None:
    root, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("data"))
    (original,) = (root / "sssd" / "checkpoints" / "EURUSD").glob("*/best.ckpt")
    target = copy / original.relative_to(root)
    before = load_checkpoint(original).calibration

    def calibrate(*extra: str) -> tuple[str, dict]:
        code, out, err = _run(
            "calibrate", "--asset", "EURUSD", "--data-dir", str(root / "data"),
            "--artifacts-dir", str(copy), "-o", "inference.calibration_samples=16",
            "-o", "inference.calibration_forecasts=60", *extra,
        )  # fmt: skip
        assert code == 0, err
        assert "calibration on the validation range: done in" in err  # progress on stderr
        stored = load_checkpoint(target).calibration
        assert stored is not None
        return out, stored

    out, stored = calibrate()
    assert f"stored in {target}" in out and "location kept" in out
    assert stored["fitted_on"]["num_samples"] == 16 and stored["fitted_on"]["forecasts"] <= 60
    assert set(stored["location"]["keep"]) == {"5", "15", "60", "240"}
    assert load_checkpoint(original).calibration == before  # the folder not named: untouched
    evidence = stored["fitted_on"]["evidence"]  # maps weighed by their evidence by default
    assert set(evidence) == {"5", "15", "60", "240"} and "map kept" in out
    assert all(0 <= e["map_weight"] <= 1 for e in evidence.values())
    assert evidence["240"]["independent_outcomes"] <= evidence["5"]["independent_outcomes"] <= 60
    out, stored = calibrate(
        "-o", "inference.calibration_location=false", "-o", "inference.calibration_evidence=false"
    )
    assert "location kept" not in out and "location" not in stored
    assert "map kept" not in out and "evidence" not in stored["fitted_on"]
