"""Nothing silently wrong (issue 15): one test per hostile or careless input, each checking the
named error (problem and place), exit code 2 on the CLI, and that the store is unchanged after
a refused operation."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import torch

from forex_diffusion.data.importers import import_files
from forex_diffusion.data.store import CandleStore
from forex_diffusion.errors import ConfigError, DataError
from forex_diffusion.inference.sssd_inference import SSSDInferenceService
from robustness_utils import (
    checkpoint,
    cli,
    make_root,
    perturbed_copy,
    snapshot,
    tidy_lines,
    write_tidy,
)

OHLC = ["open", "high", "low", "close"]
T = pd.Timestamp("2019-02-06 14:35", tz="UTC")  # a 5m close inside the synthetic market


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_root(tmp_path_factory.mktemp("robust"))


@pytest.fixture(scope="module")
def window(root: Path) -> pd.DataFrame:
    """1m candles ending with the bar that closes at ``T`` (a complete 5m bar)."""
    candles = CandleStore(root / "store").load("EURUSD")
    return candles[candles.index < T]


@pytest.fixture
def service(root: Path) -> SSSDInferenceService:
    return SSSDInferenceService.from_checkpoint(checkpoint(root), device="cpu")


def seeded(svc: SSSDInferenceService, df: pd.DataFrame, **kw: object):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)  # the same sampling noise for every call (the cache stays in use)
    return svc.predict(df, num_samples=32, **kw)  # type: ignore[arg-type]


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    """A store holding 180 1m bars of EURUSD from a tidy file."""
    path = write_tidy(tmp_path / "a.csv", tidy_lines())
    import_files([path], "EURUSD", CandleStore(tmp_path / "store"))
    return tmp_path / "store"


def data_import(store_dir: Path, *args: str) -> tuple[int, str]:
    return cli("data", "import", *args, "--asset", "EURUSD", "--data-dir", str(store_dir))


# ------------------------------------------------------------------ 1. the inference cache


def test_01_cache_sees_altered_history(service: SSSDInferenceService, window) -> None:
    first = seeded(service, window)
    assert seeded(service, window) is first and service.cache_hits == 1
    altered = window.copy()
    altered.iloc[:-1, [altered.columns.get_loc(c) for c in OHLC]] *= 1.05  # all but the last bar
    again = seeded(service, altered)
    assert again is not first and service.cache_misses == 2
    assert again.timestamp == first.timestamp and again.last_close == first.last_close
    assert any(again.mean[h] != first.mean[h] for h in first.horizons)  # a different forecast


def test_02_cache_keeps_the_history_check(service: SSSDInferenceService, window) -> None:
    seeded(service, window)
    with pytest.raises(
        DataError, match=r"too little history for the lookbacks: 1h needs 30 complete bars"
    ):
        seeded(service, window.iloc[-600:])  # same decision time, last bar and close


def test_03_cache_is_per_model(root: Path, tmp_path: Path, window) -> None:
    other = perturbed_copy(checkpoint(root), tmp_path / "other.ckpt")  # same name, other weights
    a = SSSDInferenceService.from_checkpoint(checkpoint(root), device="cpu")
    b = SSSDInferenceService.from_checkpoint(other, device="cpu")
    assert a.model_name == b.model_name and a.model_digest != b.model_digest
    pa, pb = seeded(a, window), seeded(b, window)
    assert any(pa.mean[h] != pb.mean[h] for h in pa.horizons)


# ------------------------------------------------------------------ 2. conflicting bars


def other_volume(lines: list[str]) -> list[str]:
    """The same bars with volume 2 instead of 1."""
    return [line[: line.rfind(",")] + ",2" for line in lines]


def test_04_reimport_with_other_values_is_named(store_dir: Path, tmp_path: Path) -> None:
    before = snapshot(store_dir)
    path = write_tidy(tmp_path / "b.csv", other_volume(tidy_lines()))
    code, out = data_import(store_dir, str(path))
    assert code == 2 and "180 bar(s) differ from the bars EURUSD already stores" in out
    text = out.replace("\n", " ")
    assert (
        "b.csv:2: the bar at 2019-01-02 00:00:00 UTC is 1.15/1.1501/1.1499/1.15/2.0 in the " in text
    )
    assert "file but EURUSD already stores 1.15/1.1501/1.1499/1.15/1.0" in text
    assert "--on-conflict" in out and snapshot(store_dir) == before


def test_05_on_conflict_keep_and_replace(store_dir: Path, tmp_path: Path) -> None:
    before = snapshot(store_dir, "*.parquet")
    path = write_tidy(tmp_path / "b.csv", other_volume(tidy_lines()[:10]))
    code, out = data_import(store_dir, str(path), "--on-conflict", "keep")
    assert code == 0 and "10 conflicting bar(s)" in out and "kept as stored" in out
    assert snapshot(store_dir, "*.parquet") == before and len(before) == 1
    code, out = data_import(store_dir, str(path), "--on-conflict", "replace")
    assert code == 0 and "10 stored bar(s) replaced (changed)" in out
    stored = CandleStore(store_dir).load("EURUSD")
    assert (stored["volume"].iloc[:10] == 2).all() and (stored["volume"].iloc[10:] == 1).all()


def test_06_conflicting_duplicate_lines_in_one_file(tmp_path: Path) -> None:
    lines = tidy_lines(n=5)
    path = write_tidy(tmp_path / "d.csv", [*lines, *other_volume(lines[1:2])])  # 00:01 again
    store = tmp_path / "store"
    code, out = data_import(store, str(path))
    assert code == 2
    assert "d.csv:7: time 2019-01-02 00:01:00 UTC repeats line 3 with different values" in out
    assert snapshot(store) == {}


# ------------------------------------------------------------------ 3. the bar interval


def test_07_hourly_file_is_refused(tmp_path: Path) -> None:
    path = write_tidy(tmp_path / "h.csv", tidy_lines(n=72, freq="1h"))
    code, out = data_import(tmp_path / "store", str(path))
    assert code == 2 and "h.csv: the bars are 1h apart" in out and "1-minute or 5-minute" in out
    assert snapshot(tmp_path / "store") == {}


def test_08_api_refuses_hourly_bars(service: SSSDInferenceService, window) -> None:
    hourly = (
        window.resample("1h", label="left", closed="left")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
        .dropna()
    )
    with pytest.raises(DataError, match=r"candles for EURUSD: the bars are 1h apart"):
        service.predict(hourly)


def test_09_mixing_intervals_in_one_asset(store_dir: Path, tmp_path: Path) -> None:
    before = snapshot(store_dir)
    path = write_tidy(tmp_path / "five.csv", tidy_lines("2019-01-03", n=50, freq="5min"))
    code, out = data_import(store_dir, str(path))
    assert code == 2 and "five.csv: the file holds 5m bars" in out and "stored at 1m" in out
    assert snapshot(store_dir) == before


# ------------------------------------------------------------------ 4. sanity bounds


def test_09b_store_api_refuses_mixing_intervals(store_dir: Path) -> None:
    before = snapshot(store_dir)
    five = pd.date_range("2019-01-03", periods=50, freq="5min", tz="UTC", name="timestamp")
    bars = pd.DataFrame(
        {"open": 1.1, "high": 1.2, "low": 1.0, "close": 1.1, "volume": 0.0}, index=five
    )
    with pytest.raises(DataError, match=r"incoming bars are 5m bars .* stored at 1m"):
        CandleStore(store_dir).write("EURUSD", bars)
    assert snapshot(store_dir) == before


@pytest.mark.parametrize(
    ("case", "row", "message"),
    [
        (
            "future",
            "2200-01-02T00:00:00Z,1.1,1.2,1.0,1.15,0",
            r"x\.csv:3: time 2200-01-02 .* future",
        ),
        (
            "absurd",
            "2019-01-02T00:03:00Z,1.15,1e300,1.1,1.15,0",
            r"x\.csv:3: price 1e\+300 outside",
        ),
        (
            "jump",
            "2019-01-02T00:03:00Z,1.75,1.8,1.7,1.75,0",
            r"x\.csv:3: close 1\.75 .* jump of 52%",
        ),
    ],
)
def test_10_to_12_implausible_bars(tmp_path: Path, case: str, row: str, message: str) -> None:
    path = write_tidy(tmp_path / "x.csv", [tidy_lines(n=1)[0], row])
    code, out = data_import(tmp_path / "store", str(path))
    assert code == 2 and "nothing was imported" in out
    assert pd.Series([out.replace("\n", " ")]).str.contains(message).all(), out
    assert snapshot(tmp_path / "store") == {}


def test_sanity_bounds_are_configurable(tmp_path: Path) -> None:
    from forex_diffusion.config.sssd_config import SanityBounds

    path = write_tidy(tmp_path / "x.csv", ["2019-01-02T00:00:00Z,1.15,1.8,1.15,1.75,0"])
    report = import_files(
        [path], "EURUSD", CandleStore(tmp_path / "s"), sanity=SanityBounds(max_jump=1.0)
    )
    assert report.rows_written == 1


# ------------------------------------------------------------------ 5. stale forecasts


def test_13_asof_beyond_the_data(root: Path, service: SSSDInferenceService, window) -> None:
    code, out = cli("predict", "--asset", "EURUSD", "--asof", "2030-01-01", root=root)
    assert code == 2
    assert "the latest bar closed at 2019-02-08 22:00:00+00:00 UTC" in out
    assert "day(s)" in out and "before asof 2030-01-01" in out and "--allow-stale" in out
    code, out = cli(
        "predict", "--asset", "EURUSD", "--asof", "2030-01-01", "--allow-stale", "--samples", "8",
        root=root,
    )  # fmt: skip
    assert code == 0 and "240 min" in out
    with pytest.raises(DataError, match="max_staleness_minutes"):
        service.predict(window, asof="2019-02-07")
    assert service.predict(window, asof="2019-02-07", allow_stale=True).timestamp == T


# ------------------------------------------------------------------ 6. damaged store files


def _damaged_copy(root: Path, tmp_path: Path, keep: int) -> Path:
    store = tmp_path / "store"
    shutil.copytree(root / "store", store)
    target = store / "EURUSD" / "2019.parquet"
    target.write_bytes(target.read_bytes()[:keep])
    return store


def test_14_data_info_names_the_damaged_file(root: Path, tmp_path: Path) -> None:
    store = _damaged_copy(root, tmp_path, keep=300)
    CandleStore(store).write("GBPUSD", CandleStore(root / "store").load("EURUSD").iloc[:100])
    code, out = cli("data", "info", "--data-dir", str(store))
    assert code == 2 and "GBPUSD" in out  # the healthy asset is still reported
    assert "EURUSD/2019.parquet: damaged candle file of EURUSD" in out.replace("\n", "")
    assert "re-import the year 2019" in out


def test_15_predict_names_the_truncated_file(root: Path, tmp_path: Path) -> None:
    store = _damaged_copy(root, tmp_path, keep=-1000)
    before = snapshot(store)
    code, out = cli("predict", "--asset", "EURUSD", "--data-dir", str(store), root=root)
    assert code == 2 and "2019.parquet: damaged candle file of EURUSD" in out
    assert "re-import the year 2019" in out and snapshot(store) == before


def test_16_data_check(root: Path, tmp_path: Path) -> None:
    code, out = cli("data", "check", "--data-dir", str(root / "store"))
    assert code == 0 and "all 1 file(s) ok" in out
    store = _damaged_copy(root, tmp_path, keep=5000)
    code, out = cli("data", "check", "--data-dir", str(store))
    assert code == 2 and "1 of 1 file(s) damaged" in out and "2019.parquet" in out


# ------------------------------------------------------------------ 7. named errors


def test_17_asof_yesterday(root: Path) -> None:
    code, out = cli("predict", "--asset", "EURUSD", "--asof", "yesterday", root=root)
    assert code == 2 and "invalid --asof 'yesterday'" in out and "2019-06-03T12:00Z" in out


def test_18_steps_bound_in_the_schema(root: Path) -> None:
    code, out = cli("predict", "--asset", "EURUSD", "-o", "inference.steps=1000000", root=root)
    assert code == 2 and "inference.steps: Input should be less than or equal to 1000" in out
    code, out = cli(
        "config", "show", "-o", "inference.steps=500", "-o", "model.diffusion.train_steps=100"
    )
    assert code == 2 and "inference.steps=500 exceeds model.diffusion.train_steps=100" in out


def test_19_evaluate_out_is_an_existing_file(root: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "report.txt"
    out_file.write_text("keep me")
    code, out = cli(
        "evaluate", "--asset", "EURUSD", "--start", "2019-01-28", "--end", "2019-02-03",
        "--out", str(out_file), root=root,
    )  # fmt: skip
    assert code == 2 and f"--out {out_file} is an existing file" in out.replace("\n", "")
    assert out_file.read_text() == "keep me"


def test_20_unparseable_asof_in_the_api(service: SSSDInferenceService, window) -> None:
    with pytest.raises(DataError, match=r"invalid asof 'yesterday'"):
        service.predict(window, asof="yesterday")
    with pytest.raises(DataError, match=r"invalid asof 12345 \(int\)"):
        service.predict(window, asof=12345)


def test_21_string_price_in_the_api(service: SSSDInferenceService, window) -> None:
    bad = window.astype({"close": object})
    bad.iloc[-3, bad.columns.get_loc("close")] = "1.1x"
    with pytest.raises(
        DataError, match=r"non-numeric value '1\.1x' in column 'close' at 2019-02-06 14:32"
    ):
        service.predict(bad)


def test_22_unknown_device(root: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown device 'tpu'.*'cpu', 'cuda'"):
        SSSDInferenceService.from_checkpoint(checkpoint(root), device="tpu")


# ------------------------------------------------------------------ 8. unclear messages


def test_23_missing_close_column(tmp_path: Path) -> None:
    path = tmp_path / "nc.csv"
    path.write_text("timestamp,open,high,low,volume\n2019-01-02T00:00:00Z,1,1,1,0\n")
    code, out = data_import(tmp_path / "store", str(path))
    assert code == 2 and "nc.csv:1: missing required column(s) ['close']" in out


def test_24_empty_zip(tmp_path: Path) -> None:
    path = tmp_path / "e.zip"
    zipfile.ZipFile(path, "w").close()
    code, out = data_import(tmp_path / "store", str(path))
    assert code == 2 and "e.zip: the zip archive is empty" in out


def test_25_directory_instead_of_a_file(tmp_path: Path) -> None:
    folder = tmp_path / "candles"
    folder.mkdir()
    write_tidy(folder / "a.csv", tidy_lines())
    code, out = data_import(tmp_path / "store", str(folder))
    assert code == 2 and "candles is a directory, not a candle file" in out and "a.csv" in out


def test_25b_config_directory_instead_of_a_file(tmp_path: Path) -> None:
    code, out = cli("config", "show", "--config", str(tmp_path))
    assert code == 2 and f"{tmp_path} is a directory, not a config file" in out


def test_26_best_ckpt_is_a_directory(root: Path, tmp_path: Path) -> None:
    (tmp_path / "ck" / "EURUSD" / "tiny_eval" / "best.ckpt").mkdir(parents=True)
    code, out = cli(
        "predict", "--asset", "EURUSD", "--checkpoint-dir", str(tmp_path / "ck"), root=root
    )
    assert code == 2 and "best.ckpt is a directory, not a checkpoint file" in out


def test_27_plot_into_a_folder(root: Path, tmp_path: Path) -> None:
    code, out = cli(
        "predict", "--asset", "EURUSD", "--samples", "8", "--plot", str(tmp_path), root=root
    )
    assert code == 0, out
    written = tmp_path / "EURUSD_20190208T2200_fan.png"
    assert f"fan chart written to {written}" in out.replace("\n", "")
    assert written.stat().st_size > 10_000
    code, out = cli("predict", "--asset", "EURUSD", "--plot", str(tmp_path / "x.txt"), root=root)
    assert code == 2 and "give a .png file name or an existing folder" in out


# ------------------------------------------------------------------ 9. stale temporaries


def test_28_orphan_temporaries(store_dir: Path, tmp_path: Path) -> None:
    orphan = store_dir / "EURUSD" / ".2019.parquet.4242.deadbeef.tmp"
    orphan.write_bytes(b"half a parquet file")
    assert len(CandleStore(store_dir).load("EURUSD")) == 180  # never read
    code, out = cli("data", "check", "--data-dir", str(store_dir))
    assert code == 0 and "stale temporary file" in out
    path = write_tidy(tmp_path / "more.csv", tidy_lines("2019-01-02 03:00", n=10))
    code, out = data_import(store_dir, str(path))
    assert code == 0 and "removed 1 stale temporary file(s)" in out
    assert not orphan.exists() and len(CandleStore(store_dir).load("EURUSD")) == 190


def test_identical_reimport_stays_idempotent(store_dir: Path, tmp_path: Path) -> None:
    before = snapshot(store_dir, "*.parquet")
    code, out = data_import(store_dir, str(tmp_path / "a.csv"))
    assert code == 0 and "0 new bar(s) written, 180 already stored" in out
    assert snapshot(store_dir, "*.parquet") == before and len(before) == 1
