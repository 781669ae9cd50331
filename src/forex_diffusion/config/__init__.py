"""Typed, strict configuration.

``SSSDConfig`` and ``load_sssd_config`` are loaded on first use, so that importing a light
submodule (``forex_diffusion.config.presets``) does not pull in pydantic and pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from forex_diffusion.config.sssd_config import SSSDConfig, load_sssd_config

__all__ = ["SSSDConfig", "load_sssd_config"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from forex_diffusion.config import sssd_config

        return getattr(sssd_config, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
