"""Times given by a user (a CLI option, an API argument) parsed to UTC with a named error."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from forex_diffusion.errors import DataError
from forex_diffusion.timeframes import to_utc

_EXAMPLE = "an ISO date or time such as 2019-06-03 or 2019-06-03T12:00Z (naive times are UTC)"


def parse_utc(value: Any, what: str) -> pd.Timestamp:
    """``value`` (ISO string, datetime, pandas/numpy timestamp) as a tz-aware UTC Timestamp.

    Args:
        value: the time as given.
        what: where it was given, for the message (``--asof``, ``asof``).

    Raises:
        DataError: a value that is not a time (``yesterday``, a number, an empty string).
    """
    if not isinstance(value, str | dt.datetime | dt.date | pd.Timestamp | np.datetime64):
        raise DataError(f"invalid {what} {value!r} ({type(value).__name__}): use {_EXAMPLE}")
    try:
        stamp = to_utc(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(f"invalid {what} {value!r}: use {_EXAMPLE}") from exc
    if pd.isna(stamp):
        raise DataError(f"invalid {what} {value!r}: use {_EXAMPLE}")
    return stamp
