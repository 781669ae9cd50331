"""``forex-diffusion data ...`` through typer's CliRunner: import, info, synth, resample, errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from forex_diffusion.cli.main import app
from forex_diffusion.data.store import CandleStore

runner = CliRunner()

TIDY = "timestamp,open,high,low,close,volume\n" + "".join(
    f"2019-01-02T{h:02d}:{m:02d}:00Z,1.1,1.2,1.0,1.15,0\n" for h in range(3) for m in range(60)
)


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    path = tmp_path / "eurusd.csv"
    path.write_text(TIDY)
    return path


def test_import_info_resample(tmp_path: Path, csv: Path) -> None:
    store = str(tmp_path / "store")
    code, out = run("data", "import", str(csv), "--asset", "eurusd", "--data-dir", store)
    assert code == 0, out
    assert "180 new bar(s) written" in out and "tidy" in out
    code, out = run("data", "import", str(csv), "--asset", "EURUSD", "--data-dir", store)
    assert code == 0 and "0 new bar(s) written, 180 already stored" in out
    code, out = run("data", "info", "--data-dir", store)
    assert code == 0 and "EURUSD" in out and "180" in out and "market" in out
    target = tmp_path / "out" / "h.csv"
    code, out = run(
        "data",
        "resample",
        "--asset",
        "EURUSD",
        "--timeframe",
        "1h",
        "--start",
        "2019-01-02",
        "--end",
        "2019-01-03",
        "--out",
        str(target),
        "--data-dir",
        store,
    )
    assert code == 0, out
    bars = pd.read_csv(target)
    assert bars["timestamp"].tolist() == [f"2019-01-02T0{h}:00:00Z" for h in range(3)]
    assert bars["n_base"].tolist() == [60, 60, 60] and bars["close"].tolist() == [1.15] * 3


def test_synth_says_synthetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOREX_DIFFUSION_DATA_DIR", str(tmp_path / "env_store"))
    code, out = run(
        "data",
        "synth",
        "--asset",
        "SYNTH",
        "--start",
        "2021-03-01",
        "--end",
        "2021-03-03",
        "--seed",
        "5",
    )
    assert code == 0, out
    assert "SYNTHETIC" in out and "not real prices" in out
    store = CandleStore(tmp_path / "env_store")
    assert store.info("SYNTH").synthetic and store.info("SYNTH").bars > 2_500
    code, out = run("data", "info", "--asset", "SYNTH")
    assert code == 0 and "SYNTHETIC" in out


def test_bad_file_exit_2_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(TIDY + "2019-01-02T03:00:00Z,1.1,1.0,1.05,1.15,0\n")
    code, out = run(
        "data", "import", str(bad), "--asset", "EURUSD", "--data-dir", str(tmp_path / "s")
    )
    assert code == 2
    assert "bad.csv:182: high 1 is below max(open, close)" in out.replace("\n", " ")
    assert "Traceback" not in out
    assert CandleStore(tmp_path / "s").assets() == []
    code, out = run(
        "data",
        "import",
        str(bad),
        "--asset",
        "EURUSD",
        "--data-dir",
        str(tmp_path / "s"),
        "--skip-bad",
    )
    assert code == 0 and "skipped 1 bad row" in out and "180 new bar(s)" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (("data", "info", "--asset", "GBPUSD"), "'GBPUSD' is not in the candle store"),
        (("data", "resample", "--asset", "X", "--timeframe", "7x"), "invalid timeframe"),
        (("data", "resample", "--asset", "X", "--start", "yesterday-ish"), "invalid --start"),
        (("data", "import", "missing.csv", "--asset", "EURUSD"), "no such file"),
        (
            ("data", "import", "missing.csv", "--asset", "EURUSD", "--format", "xls"),
            "unknown format",
        ),
        (("data", "synth", "--start", "2021-03-06", "--end", "2021-03-07"), "no trading minutes"),
    ],
)
def test_errors_are_one_clear_message(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    code, out = run(*args, "--data-dir", str(tmp_path))
    assert code == 2, out
    assert message in out and "Traceback" not in out


def test_info_on_empty_store(tmp_path: Path) -> None:
    code, out = run("data", "info", "--data-dir", str(tmp_path / "none"))
    assert code == 0 and "is empty" in out


def test_file_system_error_is_one_message(tmp_path: Path, csv: Path) -> None:
    not_a_dir = tmp_path / "plain-file"
    not_a_dir.write_text("x")
    code, out = run("data", "import", str(csv), "--asset", "EURUSD", "--data-dir", str(not_a_dir))
    assert code == 2 and "file-system error" in out and "Traceback" not in out


def test_config_paths_data_dir_is_used(
    tmp_path: Path, default_config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FOREX_DIFFUSION_DATA_DIR", raising=False)
    text = default_config_path.read_text()
    assert "  data_dir: data " in text
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(text.replace("  data_dir: data ", f"  data_dir: {tmp_path / 'cfg_store'} ", 1))
    code, out = run(
        "data", "synth", "--start", "2021-03-01", "--end", "2021-03-02", "--config", str(cfg)
    )
    assert code == 0, out
    assert CandleStore(tmp_path / "cfg_store").assets() == ["SYNTH"]
