"""Paths a worker on another process or host must see as the driver does."""

from __future__ import annotations

from pathlib import Path

from forex_diffusion.config.sssd_config import SSSDConfig

PATH_KEYS = ("data_dir", "artifacts_dir", "checkpoint_dir", "log_dir", "reports_dir")


def absolute_paths(config: SSSDConfig) -> SSSDConfig:
    """``config`` with its ``paths`` folders made absolute against the driver's working
    directory (a Ray worker runs elsewhere; on a cluster these must be shared mounts)."""
    paths = config.paths
    overrides = [
        f"paths.{key}={Path(getattr(paths, key)).expanduser().absolute()}" for key in PATH_KEYS
    ]
    return config.with_overrides(overrides)
