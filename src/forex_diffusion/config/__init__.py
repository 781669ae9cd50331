"""Typed, strict configuration."""

from forex_diffusion.config.sssd_config import SSSDConfig, load_sssd_config

__all__ = ["SSSDConfig", "load_sssd_config"]
