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


def _info_rows(out: str) -> dict[str, list[str]]:
    """The cells of each asset row of the `data info` table, by asset."""
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines()]
    return {r[0]: r for r in rows if len(r) == 8}


def test_info_is_the_stores_summary_on_real_data(tmp_path: Path, fx_dir: Path) -> None:
    """`data info` (store_info: the manifest, no pandas) shows exactly CandleStore.info: a
    real year plus the first week of the next (a year boundary), before and after the
    manifest exists, and after an append changes a year file."""
    from forex_diffusion.data import store_info
    from forex_diffusion.data.store import (
        _YEAR_FILE,
        CLOSURE_MIN,
        GAP_THRESHOLD,
        JOURNAL_FILE,
        META_FILE,
    )
    from fx_test_utils import load_fx

    assert store_info.META_FILE == META_FILE and store_info.YEAR_FILE.pattern == _YEAR_FILE.pattern
    assert store_info.JOURNAL_FILE == JOURNAL_FILE
    assert GAP_THRESHOLD.value == store_info.GAP_THRESHOLD_NS
    assert CLOSURE_MIN.value == store_info.CLOSURE_MIN_NS
    root = tmp_path / "store"
    code, out = run(
        "data", "import", str(fx_dir / "EURUSD_M1_2019.csv.gz"), "--asset", "EURUSD",
        "--data-dir", str(root),
    )  # fmt: skip
    assert code == 0, out
    store = CandleStore(root)
    store.write("EURUSD", load_fx(fx_dir, "2020-01-01", "2020-01-06"))
    store.write("EURUSD", load_fx(fx_dir, "2020-01-06", "2020-01-08"))  # one file, rewritten

    def check() -> None:
        want = store.info("EURUSD")
        got = store_info.summarize_asset(root, "EURUSD")
        assert (got.asset, got.base_timeframe, got.bars) == (
            want.asset,
            want.base_timeframe,
            want.bars,
        )
        assert (pd.Timestamp(got.first), pd.Timestamp(got.last)) == (want.first, want.last)
        assert [(pd.Timestamp(s), pd.Timestamp(e)) for s, e in got.gaps] == [
            (g.start, g.end) for g in want.gaps
        ]
        assert (got.closures, got.synthetic) == (want.closures, want.synthetic)
        code, out = run("data", "info", "--data-dir", str(root))
        assert code == 0, out
        assert _info_rows(out)["EURUSD"] == [
            "EURUSD", "1m", f"{want.bars:,}", want.first.strftime("%Y-%m-%d %H:%M"),
            want.last.strftime("%Y-%m-%d %H:%M"), str(want.gap_count), str(want.closures),
            "market",
        ]  # fmt: skip
        code, out = run("data", "info", "--data-dir", str(root), "--asset", "eurusd")
        assert code == 0, out
        for g in want.gaps[:20]:
            line = f"│ {g.start:%Y-%m-%d %H:%M} │ {g.end:%Y-%m-%d %H:%M} │ {g.duration} │"
            assert line in out, line

    manifest = root / "EURUSD" / store_info.MANIFEST_FILE
    assert not manifest.exists()
    check()  # reads the year files, writes the manifest
    assert manifest.is_file()
    check()  # from the manifest
    assert store.info("EURUSD").gap_count > 0 and store.info("EURUSD").closures > 50
    before = store.info("EURUSD").bars
    store.write("EURUSD", load_fx(fx_dir, "2020-01-08", "2020-01-10"))  # appended (journal)
    assert store.info("EURUSD").bars > before
    check()
    # a small back-fill inside a year file's span goes to the journal too: the spans
    # interleave and the summary is taken over the merged open times
    year = load_fx(fx_dir, "2019-01-01", "2020-01-01")
    hole = (year.index >= pd.Timestamp("2019-03-05", tz="UTC")) & (
        year.index < pd.Timestamp("2019-03-06", tz="UTC")
    )
    other = tmp_path / "store2"
    fresh = CandleStore(other)
    fresh.write("EURUSD", year[~hole])
    fresh.write("EURUSD", year[hole])
    assert (other / "EURUSD" / JOURNAL_FILE).is_file()
    want, got = fresh.info("EURUSD"), store_info.summarize_asset(other, "EURUSD")
    assert got.bars == want.bars == len(year)
    assert [(pd.Timestamp(s), pd.Timestamp(e)) for s, e in got.gaps] == [
        (g.start, g.end) for g in want.gaps
    ]
    assert got.closures == want.closures


def test_info_reads_no_damaged_file_from_the_manifest(tmp_path: Path) -> None:
    """A year file replaced behind the manifest's back is read again, and a damaged one is
    reported by name as before."""
    from forex_diffusion.data import store_info

    root = tmp_path / "store"
    code, out = run(
        "data", "synth", "--start", "2021-03-01", "--end", "2021-03-03", "--data-dir", str(root)
    )
    assert code == 0, out
    assert run("data", "info", "--data-dir", str(root))[0] == 0
    assert (root / "SYNTH" / store_info.MANIFEST_FILE).is_file()
    (root / "SYNTH" / "2021.parquet").write_bytes(b"not parquet")
    code, out = run("data", "info", "--data-dir", str(root))
    assert code == 2 and "DAMAGED" in out and "2021.parquet" in out


@pytest.mark.parametrize("minutes", [1, 31, 59, 61, 14 * 60 + 6, 23 * 60 + 59, 25 * 60])
def test_gap_length_is_written_as_pandas_writes_it(minutes: int) -> None:
    from datetime import timedelta

    from forex_diffusion.cli.data_cmd import _duration

    assert _duration(timedelta(minutes=minutes)) == str(pd.Timedelta(minutes=minutes))
