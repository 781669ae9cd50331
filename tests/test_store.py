"""The candle store: data root, merge, idempotence, atomic writes, loading, info, real data."""

from __future__ import annotations

import pickle
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forex_diffusion.config.sssd_config import load_sssd_config
from forex_diffusion.data import store as store_module
from forex_diffusion.data.candles import validate_candles
from forex_diffusion.data.importers import import_files
from forex_diffusion.data.store import CandleStore, resolve_data_dir
from forex_diffusion.errors import DataError, NotFoundError


def bars(start: str, periods: int, freq: str = "1min", price: float = 1.1) -> pd.DataFrame:
    idx = pd.date_range(start, periods=periods, freq=freq, tz="UTC", name="timestamp")
    close = price + 1e-4 * np.sin(np.arange(periods))
    open_ = np.r_[price, close[:-1]]
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) + 5e-5,
            "low": np.minimum(open_, close) - 5e-5,
            "close": close,
            "volume": np.arange(periods, dtype=float),
        },
        index=idx,
    )


def file_bytes(store: CandleStore, asset: str) -> dict[str, bytes]:
    folder = store.data_dir / asset
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.parquet"))}


def test_resolve_data_dir_precedence(
    monkeypatch: pytest.MonkeyPatch, default_config_path: Path
) -> None:
    cfg = load_sssd_config(default_config_path, overrides=["paths.data_dir=/cfg/data"])
    monkeypatch.delenv("FOREX_DIFFUSION_DATA_DIR", raising=False)
    assert resolve_data_dir() == Path("data")
    assert resolve_data_dir(cfg) == Path("/cfg/data")
    monkeypatch.setenv("FOREX_DIFFUSION_DATA_DIR", "/env/data")
    assert resolve_data_dir(cfg) == Path("/env/data")
    assert resolve_data_dir(cfg, "/explicit") == Path("/explicit")


def test_roundtrip_and_range_query(tmp_path: Path, synth_month: pd.DataFrame) -> None:
    store = CandleStore(tmp_path)
    report = store.write("synth", synth_month, source="test")
    assert report.asset == "SYNTH" and report.rows_added == len(synth_month)
    assert (
        store.assets() == ["SYNTH"] and store.has("Synth") and store.base_timeframe("SYNTH") == "1m"
    )
    loaded = store.load("SYNTH")
    pd.testing.assert_frame_equal(loaded, validate_candles(synth_month), check_freq=False)
    assert loaded.attrs["synthetic"] is True
    part = store.load("SYNTH", "2021-03-08", "2021-03-09 12:00")
    assert part.index[0] >= pd.Timestamp("2021-03-08", tz="UTC")
    assert part.index[-1] < pd.Timestamp("2021-03-09 12:00", tz="UTC")
    expected = synth_month.loc["2021-03-08":"2021-03-09 11:59"]
    assert len(part) == len(expected)
    # aware non-UTC bounds mean the same instants
    same = store.load(
        "SYNTH", pd.Timestamp("2021-03-08 01:00", tz="Europe/Paris"), "2021-03-09 12:00"
    )
    assert same.index.equals(part.index)


def test_store_pickles_and_reopens(tmp_path: Path, synth_month: pd.DataFrame) -> None:
    store = CandleStore(tmp_path)
    store.write("SYNTH", synth_month.iloc[:100])
    assert len(store.load("SYNTH")) == 100  # opens the DuckDB connection
    clone = pickle.loads(pickle.dumps(store))
    assert clone.data_dir == store.data_dir and len(clone.load("SYNTH")) == 100
    with clone:
        pass
    assert len(clone.load("SYNTH")) == 100  # reopened after close


def test_unknown_asset_and_empty_range(tmp_path: Path, synth_month: pd.DataFrame) -> None:
    store = CandleStore(tmp_path)
    with pytest.raises(NotFoundError, match="stored assets: none"):
        store.load("EURUSD")
    store.write("SYNTH", synth_month)
    with pytest.raises(
        NotFoundError, match=r"'EURUSD' is not in the candle store .*stored assets: SYNTH"
    ):
        store.info("EURUSD")
    with pytest.raises(DataError, match=r"no 1m bars for SYNTH .* the store holds 2021-03-01"):
        store.load("SYNTH", "2022-01-01", "2022-02-01")
    with pytest.raises(DataError, match="not after start"):
        store.load("SYNTH", "2021-03-05", "2021-03-04")
    with pytest.raises(DataError, match="invalid asset name"):
        store.load("../etc")


def test_idempotent_byte_equal_and_order_independent(tmp_path: Path) -> None:
    a = bars("2019-12-31 20:00", 600)  # spans two years -> two files
    b = bars("2020-01-01 01:00", 300, price=1.2)  # overlaps a
    one = CandleStore(tmp_path / "one")
    import_report = one.write("EURUSD", a)
    first = file_bytes(one, "EURUSD")
    assert set(first) == {"2019.parquet", "2020.parquet"}
    again = one.write("EURUSD", a)
    assert again.rows_added == 0 and again.already_stored == len(a) and again.files_written == ()
    assert file_bytes(one, "EURUSD") == first
    assert import_report.total_bars == again.total_bars == 600
    one.write("EURUSD", b, on_conflict="keep")
    two = CandleStore(tmp_path / "two")
    two.write("EURUSD", a)
    two.write("EURUSD", b, on_conflict="keep")
    two.write("EURUSD", a, on_conflict="keep")
    assert file_bytes(one, "EURUSD") == file_bytes(two, "EURUSD")


def test_overlapping_merge_keeps_stored_bars(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    a = bars("2020-01-06 00:00", 100)
    b = bars("2020-01-06 01:00", 100, price=1.3)  # 40 bars overlap, all with other prices
    store.write("EURUSD", a)
    report = store.write("EURUSD", b, on_conflict="keep")
    assert (report.rows_added, report.already_stored, report.conflicts) == (60, 40, 40)
    loaded = store.load("EURUSD")
    assert len(loaded) == 160 and loaded.index.is_monotonic_increasing
    pd.testing.assert_frame_equal(loaded.iloc[:100], validate_candles(a), check_freq=False)
    pd.testing.assert_frame_equal(
        loaded.iloc[100:], validate_candles(b).iloc[40:], check_freq=False
    )


def test_import_same_file_twice_is_byte_equal(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    bars("2020-01-06", 500).to_csv(path, index_label="timestamp", date_format="%Y-%m-%dT%H:%M:%SZ")
    store = CandleStore(tmp_path / "store")
    first = import_files([path], "EURUSD", store)
    snapshot = file_bytes(store, "EURUSD")
    second = import_files([path], "EURUSD", store)
    assert first.rows_written == 500 and second.rows_written == 0 and second.already_stored == 500
    assert file_bytes(store, "EURUSD") == snapshot


def test_failed_write_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = CandleStore(tmp_path)
    store.write("EURUSD", bars("2020-01-06", 100))
    before = file_bytes(store, "EURUSD")
    real_write = store_module.pq.write_table

    def write_half_then_fail(table, where, **kw):  # type: ignore[no-untyped-def]
        real_write(table.slice(0, 10), where, **kw)  # a partial file on disk ...
        raise OSError("disk full")  # ... then the failure

    monkeypatch.setattr(store_module.pq, "write_table", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        store.write("EURUSD", bars("2020-01-06 01:00", 100), on_conflict="keep")
    with pytest.raises(OSError, match="disk full"):
        store.write("GBPUSD", bars("2020-01-06", 100))
    leftovers = [p.name for p in tmp_path.rglob("*") if p.is_file() and p.name.endswith(".tmp")]
    assert leftovers == []
    assert file_bytes(store, "EURUSD") == before
    assert store.assets() == ["EURUSD"]
    assert len(store.load("EURUSD")) == 100


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    chunks = [bars(f"2020-01-06 {h:02d}:00", 60) for h in range(8)]

    def writer(parts: list[pd.DataFrame]) -> None:
        for part in parts:
            CandleStore(tmp_path).write("EURUSD", part)

    threads = [threading.Thread(target=writer, args=(chunks[i::2],)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.load("EURUSD")) == 480


def test_synthetic_and_market_never_mix(tmp_path: Path, synth_month: pd.DataFrame) -> None:
    store = CandleStore(tmp_path)
    store.write("SYNTH", synth_month)
    with pytest.raises(DataError, match="holds synthetic data"):
        store.write("SYNTH", bars("2021-05-03", 10))
    assert store.info("SYNTH").synthetic


def test_write_names_the_candles_as_the_caller_describes_them(tmp_path: Path) -> None:
    """The candle contract is checked once, by ``write``: its errors, and those about the
    bars' interval and alignment, name the candles as ``described_as`` says (the service's
    "bars for ASSET"); nothing is written."""
    store = CandleStore(tmp_path)
    store.write("EURUSD", bars("2020-01-06", 30))
    before = store.version("EURUSD")
    bad = bars("2020-01-06 00:30", 5)
    bad.iloc[2, bad.columns.get_loc("high")] = bad["low"].iloc[2] - 0.01
    with pytest.raises(DataError, match=r"^bars for EURUSD: inconsistent OHLC .* 1 bar\(s\)"):
        store.write("EURUSD", bad, described_as="bars for EURUSD")
    with pytest.raises(DataError, match=r"^candles for EURUSD: inconsistent OHLC"):
        store.write("EURUSD", bad)
    odd = bars("2020-01-06 00:30", 5, freq="5min")
    with pytest.raises(DataError, match=r"^bars for EURUSD: the incoming bars are 5m bars"):
        store.write("EURUSD", odd, described_as="bars for EURUSD")
    with pytest.raises(DataError, match=r"^candles for EURUSD: the incoming bars are 5m bars"):
        store.write("EURUSD", odd)
    late = bars("2020-01-06 00:30", 5).set_axis(bad.index + pd.Timedelta(seconds=30), axis=0)
    with pytest.raises(DataError, match=r"^bars for EURUSD: 5 bar\(s\) not on a 1m boundary"):
        store.write("EURUSD", late, described_as="bars for EURUSD")
    assert store.version("EURUSD") == before


def test_base_timeframe_5m(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    store.write("EURUSD", bars("2020-01-06", 48, freq="5min"))
    assert store.base_timeframe("EURUSD") == "5m"
    assert len(store.load("EURUSD", timeframe="1h")) == 4
    with pytest.raises(DataError, match="not a multiple of EURUSD's base timeframe 5m"):
        store.load("EURUSD", timeframe="1m")
    with pytest.raises(DataError, match="not on a 5m boundary"):
        store.write("EURUSD", bars("2020-01-07 00:01", 3, freq="5min"))


def test_load_coarser_timeframe_is_causal(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    store.write("EURUSD", bars("2020-01-06 00:00", 200))  # 00:00 .. 03:19
    hours = store.load("EURUSD", timeframe="1h")
    assert list(hours.index.hour) == [0, 1, 2]  # 03:00 has not closed
    assert hours["n_base"].tolist() == [60, 60, 60]
    with_partial = store.load("EURUSD", timeframe="1h", include_partial=True)
    assert with_partial["n_base"].tolist() == [60, 60, 60, 20]
    # start inside an hour: the bar with a missing head is not returned
    mid = store.load("EURUSD", "2020-01-06 00:30", "2020-01-06 02:00", timeframe="1h")
    assert list(mid.index.hour) == [1]
    # end inside the data: bars closing by `end` only, since the store knows what came after
    cut = store.load("EURUSD", end="2020-01-06 02:30", timeframe="1h")
    assert list(cut.index.hour) == [0, 1]
    with pytest.raises(DataError, match="no complete 4h bar"):
        store.load("EURUSD", timeframe="4h")


def test_info_gaps_exclude_weekend_and_holiday_closures(tmp_path: Path) -> None:
    parts = [
        bars("2020-12-21 10:00", 60),  # Monday
        bars("2020-12-21 11:45", 30),  # 45-min weekday gap -> counted
        bars("2020-12-21 12:45", 30),  # exactly 30 min -> not counted
        bars("2020-12-25 20:00", 60),  # Friday: a gap of days on weekdays -> holiday closure
        bars("2020-12-28 10:00", 60),  # Monday: the gap touches Saturday -> weekend closure
        bars("2020-12-29 12:00", 60),  # Tuesday: a 25-hour weekday gap -> holiday closure
        bars("2020-12-29 14:00", 10),  # 1-hour gap -> counted
    ]
    store = CandleStore(tmp_path)
    store.write("EURUSD", pd.concat(parts))
    info = store.info("EURUSD")
    assert info.bars == 310 and info.gap_count == 2 and info.closures == 3
    assert info.gaps[0].start == pd.Timestamp("2020-12-21 11:00", tz="UTC")
    assert info.gaps[0].duration == pd.Timedelta(minutes=45)
    assert info.gaps[1].duration == pd.Timedelta(hours=1)
    assert info.first == pd.Timestamp("2020-12-21 10:00", tz="UTC")
    assert info.last == pd.Timestamp("2020-12-29 14:09", tz="UTC")


def test_real_eurusd_2019(fx_dir: Path, tmp_path: Path) -> None:
    path = fx_dir / "EURUSD_M1_2019.csv.gz"
    store = CandleStore(tmp_path)
    report = import_files([path], "EURUSD", store)
    assert report.rows_read == report.rows_written == 372_470
    assert report.first == pd.Timestamp("2019-01-01 22:02", tz="UTC")
    assert report.last == pd.Timestamp("2019-12-31 21:59", tz="UTC")
    info = store.info("EURUSD")
    assert (info.bars, info.gap_count) == (372_470, 4)  # README: 4 weekday gaps > 30 min

    ref = pd.read_csv(path, parse_dates=["timestamp"], index_col="timestamp")
    assert len(ref) == 372_470
    for tf, rule in (("5m", "5min"), ("1h", "1h")):
        expected = (
            ref.resample(rule, label="left", closed="left")
            .agg({"open": "first", "high": "max", "low": "min", "close": "last"})
            .dropna()
        )
        got = store.load("EURUSD", timeframe=tf)
        assert len(got) == len(expected), tf
        assert got.index.equals(expected.index.as_unit("ns"))
        np.testing.assert_array_equal(got["high"].to_numpy(), expected["high"].to_numpy())
        np.testing.assert_array_equal(got["close"].to_numpy(), expected["close"].to_numpy())
    month = store.load("EURUSD", "2019-03-01", "2019-04-01")
    assert len(month) == len(ref.loc["2019-03"])


# ---------------------------------------------------------------------- journal (appends)


def _journal(store: CandleStore, asset: str = "EURUSD") -> Path:
    return store.data_dir / asset / store_module.JOURNAL_FILE


def test_small_appends_go_to_the_journal_and_read_as_the_compacted_store(tmp_path: Path) -> None:
    """History written at once, then appends of 7 bars: the year file is never rewritten, every
    reader sees the bars, and a compaction gives the year file of a store written in one go."""
    history, live = bars("2020-01-06", 600), bars("2020-01-06 10:00", 140, price=1.2)
    store = CandleStore(tmp_path / "a", compact_rows=1_000)
    store.write("EURUSD", history)
    year_file = file_bytes(store, "EURUSD")
    for k in range(0, len(live), 7):
        report = store.write("EURUSD", live.iloc[k : k + 7], source="live")
        assert report.rows_added == 7 and report.files_written == (_journal(store),)
        assert report.total_bars == 600 + k + 7
    assert {k: v for k, v in file_bytes(store, "EURUSD").items() if k != "journal.parquet"} == (
        year_file
    )
    both = validate_candles(pd.concat([history, live]))
    pd.testing.assert_frame_equal(store.load("EURUSD"), both, check_freq=False)
    part = store.load("EURUSD", "2020-01-06 09:50", "2020-01-06 10:30")
    pd.testing.assert_frame_equal(
        part, both.loc["2020-01-06 09:50":"2020-01-06 10:29"], check_freq=False
    )
    hours = store.load("EURUSD", timeframe="1h")
    assert list(hours.index.hour) == list(range(12)) and hours["n_base"].tolist() == [60] * 12
    info = store.info("EURUSD")
    assert info.bars == 740 and info.last == both.index[-1] == store.last_bar("EURUSD")
    assert _journal(store) in info.files
    assert [h.ok for h in store.check("EURUSD")] == [True, True]
    # idempotent: the same bars again change nothing
    again = store.write("EURUSD", live.iloc[-7:])
    assert again.rows_added == 0 and again.files_written == () and again.total_bars == 740
    # a big write compacts: journal into the year file, same bytes as one write of everything
    more = bars("2020-01-06 12:20", 1_000, price=1.25)
    report = store.write("EURUSD", more)
    assert report.files_written == (store.data_dir / "EURUSD" / "2020.parquet",)
    assert not _journal(store).exists() and report.total_bars == 1_740
    one_go = CandleStore(tmp_path / "b")
    one_go.write("EURUSD", pd.concat([history, live, more]))
    assert file_bytes(store, "EURUSD") == file_bytes(one_go, "EURUSD")


def test_journal_compacts_at_the_threshold_and_across_years(tmp_path: Path) -> None:
    store = CandleStore(tmp_path, compact_rows=50)
    store.write("EURUSD", bars("2019-12-31 20:00", 200))  # -> 23:19
    feed = bars("2019-12-31 23:20", 90)  # crosses into 2020
    for k in range(0, 90, 10):
        store.write("EURUSD", feed.iloc[k : k + 10])
        assert len(store.load("EURUSD")) == 200 + k + 10
    # 40 + 10 <= 50 stays in the journal; the next append compacts
    assert _journal(store).exists() and set(file_bytes(store, "EURUSD")) == {
        "2019.parquet",
        "2020.parquet",
        "journal.parquet",
    }
    reference = CandleStore(tmp_path / "ref")
    reference.write("EURUSD", pd.concat([bars("2019-12-31 20:00", 200), feed]))
    pd.testing.assert_frame_equal(store.load("EURUSD"), reference.load("EURUSD"))


def test_journal_conflicts_keep_and_replace(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    store.write("EURUSD", bars("2020-01-06", 100))
    live = bars("2020-01-06 01:40", 10, price=1.3)
    store.write("EURUSD", live)
    before = file_bytes(store, "EURUSD")
    changed = live.iloc[3:5].copy()
    changed["close"] += 1e-5
    changed["high"] += 1e-5
    with pytest.raises(store_module.BarConflictError, match="2 incoming bar") as exc:
        store.write("EURUSD", changed)  # conflicts with journal bars
    assert len(exc.value.conflicts) == 2 and file_bytes(store, "EURUSD") == before
    old = bars("2020-01-06 00:10", 3, price=1.4)
    with pytest.raises(store_module.BarConflictError):
        store.write("EURUSD", old)  # conflicts with bars of the year file
    assert file_bytes(store, "EURUSD") == before
    kept = store.write("EURUSD", changed, on_conflict="keep")
    assert (kept.conflicts, kept.rows_added, kept.files_written) == (2, 0, ())
    replaced = store.write("EURUSD", changed, on_conflict="replace")
    assert replaced.replaced == 2 and replaced.files_written == (_journal(store),)
    assert store.load("EURUSD").loc[changed.index, "close"].tolist() == changed["close"].tolist()
    # replacing a bar of the year file rewrites it (and folds the journal in)
    store.write("EURUSD", old, on_conflict="replace")
    assert not _journal(store).exists()
    loaded = store.load("EURUSD")
    assert loaded.loc[old.index, "close"].tolist() == old["close"].tolist()
    assert loaded.loc[changed.index, "close"].tolist() == changed["close"].tolist()
    assert len(loaded) == 110


def test_interrupted_compaction_loses_nothing_and_is_finished_by_the_next_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = CandleStore(tmp_path, compact_rows=30)
    store.write("EURUSD", bars("2020-01-06", 100))
    store.write("EURUSD", bars("2020-01-06 01:40", 20, price=1.2))
    expected = store.load("EURUSD")
    before = file_bytes(store, "EURUSD")
    journal_bytes = _journal(store).read_bytes()
    # a crash while staging the year file: nothing changes
    real_write = store_module.pq.write_table

    def fail(*args, **kw):  # type: ignore[no-untyped-def]
        raise OSError("disk full")

    monkeypatch.setattr(store_module.pq, "write_table", fail)
    with pytest.raises(OSError, match="disk full"):
        store.write("EURUSD", bars("2020-01-06 02:00", 20, price=1.2))
    monkeypatch.setattr(store_module.pq, "write_table", real_write)
    assert file_bytes(store, "EURUSD") == before
    assert not [p for p in (tmp_path / "EURUSD").iterdir() if p.name.endswith(".tmp")]
    pd.testing.assert_frame_equal(store.load("EURUSD"), expected)
    # a crash after the year file was replaced, before the journal was removed
    store.write("EURUSD", bars("2020-01-06 02:00", 20, price=1.2))
    assert not _journal(store).exists()
    compacted = store.load("EURUSD")
    _journal(store).write_bytes(journal_bytes)  # the journal as the crash left it
    pd.testing.assert_frame_equal(store.load("EURUSD"), compacted)
    assert store.info("EURUSD").bars == len(compacted) == 140
    assert store.last_bar("EURUSD") == compacted.index[-1]
    report = store.write("EURUSD", bars("2020-01-06 02:20", 5, price=1.2))  # finishes it
    assert not _journal(store).exists() and report.total_bars == 145


def test_readers_during_appends_and_compactions_see_every_bar_once(tmp_path: Path) -> None:
    store = CandleStore(tmp_path, compact_rows=40)
    store.write("EURUSD", bars("2020-01-06", 200))
    feed = bars("2020-01-06 03:20", 300, price=1.2)
    done = threading.Event()
    seen: list[int] = []
    problems: list[str] = []

    def reader() -> None:
        local = CandleStore(tmp_path)
        while not done.is_set():
            try:
                frame = local.load("EURUSD")
            except Exception as exc:  # recorded: the test fails on any
                problems.append(repr(exc))
                continue
            if not frame.index.is_monotonic_increasing or frame.index.has_duplicates:
                problems.append("order")
            if seen and len(frame) < seen[-1]:
                problems.append(f"lost bars: {len(frame)} after {seen[-1]}")
            seen.append(len(frame))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for k in range(0, 300, 5):
            store.write("EURUSD", feed.iloc[k : k + 5])
    finally:
        done.set()
        thread.join()
    assert problems == [] and len(seen) > 1
    assert len(store.load("EURUSD")) == 500


@given(
    st.lists(st.integers(-50, 50), max_size=30),
    st.lists(st.integers(-50, 50), max_size=30, unique=True).map(sorted),
)
@settings(max_examples=200, deadline=None)
def test_membership_in_sorted_open_times_agrees_with_isin(
    values: list[int], stored: list[int]
) -> None:
    """``_in_sorted`` (binary search, used by every append) answers as ``np.isin``, also for
    values before the first and after the last stored open time."""
    a, b = np.asarray(values, np.int64), np.asarray(stored, np.int64)
    assert np.array_equal(store_module._in_sorted(a, b), np.isin(a, b))
