"""Property-based tests (Hypothesis) of the importers and of ``SSSDInferenceService.predict``:
well-formed candles round-trip exactly; corrupted inputs give the same bars, a faithful reading
of what the file says, or a named error, never a traceback and never silently different bars.

Each test is bounded in examples (``settings``) so that it runs in seconds in CI."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forex_diffusion.data.candles import CANDLE_COLUMNS, candle_frame
from forex_diffusion.data.importers import import_files
from forex_diffusion.data.store import CandleStore
from forex_diffusion.errors import DataError, ForexDiffusionError
from forex_diffusion.inference.sssd_inference import SSSDInferenceService
from robustness_utils import checkpoint, make_root

BOUNDED = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FIVE = pd.Timedelta(minutes=5)


# ------------------------------------------------------------------ candle frames


@st.composite
def candle_frames(draw: st.DrawFn, min_rows: int = 2, max_rows: int = 60) -> pd.DataFrame:
    """Well-formed candles: 1m or 5m bars (mostly consecutive, some gaps), prices in 1e-5
    steps, consistent OHLC, integer volumes; ``attrs["base"]`` is the bar interval."""
    base = draw(st.sampled_from([1, 5]))
    n = draw(st.integers(min_rows, max_rows))
    start = draw(st.integers(0, 20 * 365 * 1440 // base)) * base  # minutes after 2000-01-01
    steps = np.ones(n - 1, dtype=np.int64)
    for k in draw(st.lists(st.integers(0, max(n - 2, 0)), max_size=(n - 1) // 3)):
        if n > 1:
            steps[k] = draw(st.sampled_from([2, 3, 12, 60, 2880]))
    minutes = start + base * np.r_[0, np.cumsum(steps)]
    ts = (pd.Timestamp("2000-01-01", tz="UTC") + pd.to_timedelta(minutes, "min")).as_unit("ns")
    level = draw(st.integers(50_000, 200_000))
    moves = np.asarray(draw(st.lists(st.integers(-80, 80), min_size=n, max_size=n)))
    close_pts = level + np.cumsum(moves)
    open_pts = np.r_[level, close_pts[:-1]]
    wick = np.asarray(draw(st.lists(st.integers(0, 30), min_size=2 * n, max_size=2 * n)))
    high_pts = np.maximum(open_pts, close_pts) + wick[:n]
    low_pts = np.minimum(open_pts, close_pts) - wick[n:]
    volume = np.asarray(draw(st.lists(st.integers(0, 1000), min_size=n, max_size=n)), float)
    values = np.column_stack([open_pts, high_pts, low_pts, close_pts]) / 1e5
    frame = candle_frame(ts.asi8, np.column_stack([values, volume]))
    frame.attrs["base"] = f"{base}m"
    return frame


def _num(x: float) -> str:
    return repr(float(x))


def tidy_text(frame: pd.DataFrame, order: tuple[str, ...] = CANDLE_COLUMNS) -> str:
    lines = ["timestamp," + ",".join(order)]
    for t, row in zip(frame.index, frame.itertuples(index=False), strict=True):
        rec = row._asdict()
        lines.append(f"{t:%Y-%m-%dT%H:%M:%SZ}," + ",".join(_num(rec[c]) for c in order))
    return "\n".join(lines) + "\n"


def histdata_text(frame: pd.DataFrame) -> str:
    return "".join(
        f"{t:%Y%m%d %H%M%S};" + ";".join(_num(v) for v in row) + "\n"
        for t, row in zip(frame.index, frame.to_numpy(), strict=True)
    )


def _import(text: str, name: str, **kw: object) -> tuple[pd.DataFrame | None, Exception | None]:
    """Import ``text`` (as file ``name``) into a fresh store: (stored bars, None) or
    (None, the package's named error)."""
    folder = Path(tempfile.mkdtemp(prefix="robust_imp_"))
    try:
        path = folder / name
        path.write_text(text)
        store = CandleStore(folder / "store")
        try:
            import_files([path], "EURUSD", store, **kw)  # type: ignore[arg-type]
        except ForexDiffusionError as exc:
            assert str(exc), "an error without a message"
            assert store.assets() == [], "a refused import wrote to the store"
            return None, exc
        return store.load("EURUSD"), None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _same(stored: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert stored.index.equals(expected.index)
    np.testing.assert_array_equal(
        stored[list(CANDLE_COLUMNS)].to_numpy(), expected[list(CANDLE_COLUMNS)].to_numpy()
    )


# ------------------------------------------------------------------ importers: round trip


@BOUNDED
@given(
    frame=candle_frames(),
    layout=st.sampled_from(["tidy", "generic", "histdata"]),
    order=st.permutations(list(CANDLE_COLUMNS)),
)
def test_well_formed_frames_round_trip_exactly(
    frame: pd.DataFrame, layout: str, order: list[str]
) -> None:
    if layout == "tidy":
        stored, err = _import(tidy_text(frame), "bars.csv")
    elif layout == "generic":  # any column order, recognised by the header names
        stored, err = _import(tidy_text(frame, tuple(order)), "bars.csv")
    else:
        stored, err = _import(histdata_text(frame), "DAT_ASCII_X_M1.csv", tz="UTC")
    assert err is None, err
    assert stored is not None
    _same(stored, frame)


# ------------------------------------------------------------------ importers: corruptions


def reference_parse(text: str) -> pd.DataFrame:
    """An independent strict reading of a tidy file (header then ``time,o,h,l,c,v`` rows)."""
    lines = [line.rstrip("\r") for line in text.split("\n") if line.strip("\r") != ""]
    if lines[0] != "timestamp," + ",".join(CANDLE_COLUMNS):
        raise ValueError("header")
    times, rows = [], []
    for line in lines[1:]:
        fields = line.split(",")
        if len(fields) != 6:
            raise ValueError("fields")
        stamp = dt.datetime.strptime(fields[0], "%Y-%m-%dT%H:%M:%SZ")
        nums = [float(f) for f in fields[1:]]
        if not np.isfinite(nums).all():
            raise ValueError("non-finite")
        times.append(pd.Timestamp(stamp, tz="UTC").value)
        rows.append(nums)
    return candle_frame(np.asarray(times, dtype=np.int64), np.asarray(rows, dtype=np.float64))


@st.composite
def corruptions(draw: st.DrawFn) -> tuple[pd.DataFrame, str, str, int]:
    """(original bars, corruption kind, corrupted tidy text, index of the touched data row)."""
    frame = draw(candle_frames(min_rows=6, max_rows=40))
    text = tidy_text(frame)
    lines = text.split("\n")[:-1]
    kind = draw(st.sampled_from(["byte", "drop", "duplicate", "swap_columns", "shuffle"]))
    row = draw(st.integers(1, len(lines) - 1))  # a data line (0 is the header)
    if kind == "byte":
        raw = bytearray(text.encode())
        fields = lines[row].split(",")
        field = draw(st.integers(0, len(fields) - 1))  # a field, then a byte in it (or its end)
        offset = sum(len(f) + 1 for f in fields[:field]) + draw(st.integers(0, len(fields[field])))
        pos = sum(len(line) + 1 for line in lines[:row]) + offset
        new = draw(st.one_of(st.sampled_from(b"0123456789.-,eZ "), st.integers(0, 255)))
        if new == raw[pos]:
            new = (new + 1) % 256
        raw[pos] = new
        return frame, kind, raw.decode("latin-1"), row - 1
    if kind == "drop":
        lines.pop(row)
    elif kind == "duplicate":
        lines.insert(draw(st.integers(row, len(lines))), lines[row])
    elif kind == "swap_columns":
        a, b = draw(st.lists(st.integers(0, 5), min_size=2, max_size=2, unique=True))
        split = [line.split(",") for line in lines]
        for fields in split:
            fields[a], fields[b] = fields[b], fields[a]
        lines = [",".join(fields) for fields in split]
    else:
        size = draw(st.integers(2, min(6, len(lines) - 1)))
        row = min(row, len(lines) - size)
        block = lines[row : row + size]
        lines[row : row + size] = draw(st.permutations(block))
    return frame, kind, "\n".join(lines) + "\n", row - 1


@BOUNDED
@given(case=corruptions())
def test_corrupted_files_give_the_same_bars_or_a_named_error(
    case: tuple[pd.DataFrame, str, str, int],
) -> None:
    frame, kind, text, row = case
    stored, err = _import(text, "bars.csv")
    if err is not None:
        return  # a named error (checked in _import): acceptable for every corruption
    assert stored is not None
    if kind == "drop":  # a missing line is a gap: every other bar exactly as written
        _same(stored, frame.drop(frame.index[row]))
    elif kind == "byte":  # whatever was accepted is exactly what the file says
        _same(stored, reference_parse(text))
        untouched = np.ones(len(frame), dtype=bool)
        untouched[row] = False
        assert frame.index[untouched].isin(stored.index).all()
        common = frame[untouched]
        _same(stored.loc[common.index], common)
    else:  # a duplicated line, a reordering of columns, a shuffled block (if it is accepted)
        _same(stored, frame)


# ------------------------------------------------------------------ the inference service


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[SSSDInferenceService, pd.DataFrame]:
    root = make_root(tmp_path_factory.mktemp("robust_props"))
    candles = CandleStore(root / "store").load("EURUSD")
    return SSSDInferenceService.from_checkpoint(checkpoint(root), device="cpu"), candles


def _five_minute(frame: pd.DataFrame) -> pd.DataFrame:
    return (
        frame.resample("5min", label="left", closed="left")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
        .dropna()
    )


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    end=st.integers(6_000, 41_000),
    length=st.integers(200, 22_000),
    drop=st.lists(st.integers(0, 21_999), max_size=40),
    five=st.booleans(),
    scale=st.sampled_from([1.0, 0.01, 150.0]),
)
def test_predict_on_well_formed_frames(
    served: tuple[SSSDInferenceService, pd.DataFrame],
    end: int,
    length: int,
    drop: list[int],
    five: bool,
    scale: float,
) -> None:
    service, candles = served
    frame = candles.iloc[max(0, end - length) : end].copy()
    frame = frame.drop(frame.index[[d for d in drop if d < len(frame) - 1]])
    frame[["open", "high", "low", "close"]] *= scale
    if five:
        frame = _five_minute(frame)
    base = pd.Timedelta(minutes=5 if five else 1)
    decision = (frame.index[-1] + base).floor("5min")  # the close of the latest complete 5m bar
    try:
        pred = service.predict(frame, num_samples=8, generator=torch.Generator().manual_seed(0))
    except DataError as exc:
        assert "too little history" in str(exc), exc
        return
    assert pred.timestamp == decision
    assert pred.last_close == frame["close"][frame.index < decision].iloc[-1]
    for h in pred.horizons:
        assert np.isfinite(pred.samples[h]).all() and pred.q05[h] <= pred.q95[h]


@settings(max_examples=16, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(
        ["nan", "string", "duplicate", "swap_rows", "shuffle", "swap_high_low", "no_close", "naive"]
    ),
    at=st.integers(1, 15_000),
)
def test_predict_on_corrupted_frames_names_the_problem(
    served: tuple[SSSDInferenceService, pd.DataFrame], kind: str, at: int
) -> None:
    service, candles = served
    frame = candles.iloc[-16_000:].copy()
    i = len(frame) - at
    if kind == "nan":
        frame.iloc[i, 3] = np.nan
    elif kind == "string":
        frame = frame.astype({"close": object})
        frame.iloc[i, 3] = "1.1O"
    elif kind == "duplicate":
        frame = pd.concat([frame.iloc[: i + 1], frame.iloc[i:]])
    elif kind == "swap_rows":
        order = np.arange(len(frame))
        order[[i - 1, i]] = order[[i, i - 1]]
        frame = frame.iloc[order]
    elif kind == "shuffle":
        order = np.arange(len(frame))
        order[i - 5 : i] = order[i - 5 : i][::-1]
        frame = frame.iloc[order]
    elif kind == "swap_high_low":
        frame = frame.rename(columns={"high": "low", "low": "high"})
    elif kind == "no_close":
        frame = frame.drop(columns="close")
    else:
        frame.index = frame.index.tz_localize(None)
    expected = {
        "nan": "NaN", "string": "non-numeric value '1.1O' in column 'close'",
        "duplicate": "duplicate timestamps", "swap_rows": "not sorted", "shuffle": "not sorted",
        "swap_high_low": "inconsistent OHLC", "no_close": "missing column(s) ['close']",
        "naive": "naive",
    }[kind]  # fmt: skip
    with pytest.raises(DataError, match=None) as info:
        service.predict(frame, num_samples=8)
    assert expected in str(info.value) and "candles for EURUSD" in str(info.value)
