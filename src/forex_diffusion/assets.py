"""The one rule for asset names, shared by the candle store and the model registry."""

from __future__ import annotations

import re

from forex_diffusion.errors import DataError

_ASSET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def normalize_asset(asset: str) -> str:
    """The asset's canonical name: stripped and upper case (``" eurusd"`` -> ``"EURUSD"``).

    Raises:
        DataError: a name that is empty or unsafe as a folder name.
    """
    name = str(asset).strip()
    if not _ASSET.match(name):
        raise DataError(
            f"invalid asset name {asset!r}: use letters, digits, '_', '-' or '.' "
            "(at most 64 characters), e.g. EURUSD"
        )
    return name.upper()
