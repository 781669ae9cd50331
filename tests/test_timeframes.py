"""The leaf time module: ns constants, the one UTC range type, and the config's date ranges."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forex_diffusion.config.sssd_config import DateRange
from forex_diffusion.timeframes import NS_PER_DAY, NS_PER_HOUR, NS_PER_MIN, UtcRange

SRC = Path(__file__).resolve().parents[1] / "src" / "forex_diffusion"


def test_ns_constants() -> None:
    assert pd.Timedelta(minutes=1).value == NS_PER_MIN
    assert pd.Timedelta(hours=1).value == NS_PER_HOUR
    assert pd.Timedelta(days=1).value == NS_PER_DAY


def test_utc_range_is_half_open_and_utc() -> None:
    r = UtcRange("r", pd.Timestamp("2019-01-01"), pd.Timestamp("2019-01-02 03:00", tz="UTC"))
    assert str(r.start.tz) == "UTC" and r.start.unit == "ns"
    assert r.contains("2019-01-01") and r.contains("2019-01-02 02:59")
    assert not r.contains("2019-01-02 03:00") and not r.contains("2018-12-31 23:59")
    ns = np.array([r.start_ns - 1, r.start_ns, r.end_ns - 1, r.end_ns], dtype=np.int64)
    assert r.contains_ns(ns).tolist() == [False, True, True, False]
    touching = UtcRange("t", r.end, r.end + pd.Timedelta(days=1))
    assert not r.overlaps(touching) and not touching.overlaps(r)
    inside = UtcRange("i", r.end - pd.Timedelta(minutes=1), r.end + pd.Timedelta(days=1))
    assert r.overlaps(inside) and inside.overlaps(r)
    assert str(r) == "r 2019-01-01 → 2019-01-02 03:00"


def test_date_range_gives_the_inclusive_days_as_a_utc_range() -> None:
    r = DateRange(start="2019-01-07", end="2019-02-10").utc_range("train")
    assert r == UtcRange("train", pd.Timestamp("2019-01-07", tz="UTC"), pd.Timestamp("2019-02-11"))
    assert r.label() == "2019-01-07 → 2019-02-10"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("features", ("dataset", "training", "models", "inference", "evaluation", "data.sssd")),
        ("dataset", ("training", "models", "inference", "evaluation", "data.sssd_dataset")),
    ],
)
def test_features_and_dataset_import_only_below_them(
    package: str, forbidden: tuple[str, ...]
) -> None:
    bad = sorted(
        m
        for path in (SRC / package).rglob("*.py")
        for m in _imports(path)
        if any(m.startswith(f"forex_diffusion.{f}") for f in forbidden)
    )
    assert not bad, f"{package}/ imports {bad}"


def test_nothing_in_the_package_imports_the_public_alias() -> None:
    users = sorted(
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if "forex_diffusion.data.sssd_dataset" in _imports(p)
    )
    assert users == [], users
