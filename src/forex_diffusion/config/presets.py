"""Where the packaged YAML presets live (a light module: no pydantic, pandas or omegaconf, so
the command line can name the default config without importing the config machinery)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def _presets_dir() -> Path:
    """The YAML presets shipped inside the package (``forex_diffusion/configs/sssd``).

    ``configs/`` at the repository root links here. A package installed from a wheel or in
    editable mode lives on the file system, so the resource is a real directory.
    """
    folder = files("forex_diffusion").joinpath("configs", "sssd")
    return folder if isinstance(folder, Path) else Path(str(folder))


# Relative paths inside a config (data_dir, artifacts_dir, ...) are relative to the working
# directory, not to this file.
PRESETS_DIR = _presets_dir()
DEFAULT_CONFIG_PATH = PRESETS_DIR / "default_config.yaml"
