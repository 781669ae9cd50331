"""Real-data helpers shared by the feature, target and dataset tests (EURUSD 2019 from ../shared)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from forex_diffusion.config.sssd_config import SSSDConfig, config_from_dict, load_sssd_config

SPLITS_2019 = {
    "train": ("2019-01-01", "2019-02-10"),
    "val": ("2019-02-11", "2019-02-28"),
    "test": ("2019-03-01", "2019-03-31"),
}


def make_config(path: Path, **splits: tuple[str, str]) -> SSSDConfig:
    """The config at ``path`` with the date splits of ``SPLITS_2019``; a split passed by name
    (``val=("2019-02-11", "2019-02-20")``) replaces its default."""
    data = load_sssd_config(path).to_dict()
    chosen = {**SPLITS_2019, **splits}
    data["data"]["splits"] = {k: {"start": a, "end": b} for k, (a, b) in chosen.items()}
    return config_from_dict(data)


def load_fx(fx_dir: Path, start: str, end: str, asset: str = "EURUSD") -> pd.DataFrame:
    """1-minute candles of ``asset`` with open time in [start, end), read from the year file
    of ``start`` (``end`` may be the first day of the next year)."""
    year = pd.Timestamp(start).year
    df = pd.read_csv(
        fx_dir / f"{asset}_M1_{year}.csv.gz", parse_dates=["timestamp"], index_col="timestamp"
    )
    return df[
        (df.index >= pd.Timestamp(start, tz="UTC")) & (df.index < pd.Timestamp(end, tz="UTC"))
    ]
