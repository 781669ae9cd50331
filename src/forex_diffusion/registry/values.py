"""Values going into the registry: JSON payloads, UTC timestamps, losses, config differences."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import PurePath
from typing import Any, TypeAlias

from pydantic import BaseModel

from forex_diffusion.errors import RegistryError

DateLike: TypeAlias = datetime | date | str  # pandas Timestamps are datetimes


def utc(value: DateLike, what: str) -> datetime:
    """A tz-aware UTC datetime (naive input is taken as UTC, as everywhere in the package).

    Accepts datetimes (pandas Timestamps included), dates and ISO 8601 strings.
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise RegistryError(
                f"{what}: {value!r} is not an ISO 8601 timestamp (e.g. 2024-01-31T12:05:00Z)"
            ) from None
    if isinstance(value, datetime):
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day, tzinfo=UTC)
    else:
        raise RegistryError(f"{what}: expected a timestamp, got {type(value).__name__}")
    # A plain datetime (drops a pandas subclass and its nanoseconds).
    return datetime(
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond,
        tzinfo=UTC,
    )


def loss(value: float | None) -> float | None:
    """Losses are stored as given; NaN/inf (a diverged run) are stored as NULL on every backend."""
    if value is None:
        return None
    number = float(value)
    return number if number == number and abs(number) != float("inf") else None


def to_json(value: Any, where: str, finite_only: bool) -> Any:
    """``value`` as plain JSON types, so that what is stored equals what is read back.

    Mappings become dicts with string keys, sequences and arrays (numpy, torch) lists, their
    scalars Python numbers, dates/datetimes ISO strings, paths strings, pydantic models their JSON dump.
    Non-finite floats (JSON has none) raise when ``finite_only`` and become None otherwise.

    Raises:
        RegistryError: a value that has no JSON form, named by its dotted path in ``where``.
    """
    if isinstance(value, BaseModel):
        return to_json(value.model_dump(mode="json"), where, finite_only)
    if hasattr(value, "dtype") and hasattr(value, "tolist"):  # numpy/torch arrays and scalars
        return to_json(value.tolist(), where, finite_only)
    if isinstance(value, enum.Enum):
        return to_json(value.value, where, finite_only)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        if finite_only:
            raise RegistryError(f"{where}: {value} cannot be stored (JSON has no NaN/inf)")
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): to_json(v, f"{where}.{k}", finite_only) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [to_json(v, f"{where}[{i}]", finite_only) for i, v in enumerate(items)]
    raise RegistryError(
        f"{where}: a {type(value).__name__} cannot be stored as JSON; pass plain numbers, "
        f"strings, lists and dicts"
    )


def json_diff(old: Any, new: Any, path: str = "") -> list[str]:
    """Human-readable differences between two JSON values: ``"a.b: 1 -> 2"``."""
    if isinstance(old, dict) and isinstance(new, dict):
        lines: list[str] = []
        for key in sorted(set(old) | set(new)):
            sub = f"{path}.{key}" if path else str(key)
            if key not in old:
                lines.append(f"{sub}: (absent) -> {new[key]!r}")
            elif key not in new:
                lines.append(f"{sub}: {old[key]!r} -> (absent)")
            else:
                lines.extend(json_diff(old[key], new[key], sub))
        return lines
    if old != new:
        return [f"{path or '<value>'}: {old!r} -> {new!r}"]
    return []
