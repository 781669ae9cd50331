"""Process settings: where the candle store and the registry database are.

One rule for every setting: an explicit argument (a command-line flag) > the environment
variable ``FOREX_DIFFUSION_<NAME>`` > the config's ``paths`` section > the built-in default.

* ``data_dir`` (``FOREX_DIFFUSION_DATA_DIR``): the candle store root; default ``data``.
* ``artifacts_dir`` (``FOREX_DIFFUSION_ARTIFACTS_DIR``): the artifacts root (registry file,
  checkpoints, logs); default the config's ``paths.artifacts_dir``. The command line folds it
  into the config (``forex_diffusion.cli.common``).
* ``db_url`` (``FOREX_DIFFUSION_DB_URL``): the registry's SQLAlchemy URL; default the SQLite
  file ``<paths.artifacts_dir>/registry.db`` (``artifacts`` without a config), made absolute.

Relative paths are relative to the working directory. Empty values (an empty flag or variable,
a blank URL) count as not given.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:  # the config module pulls in pandas; the settings need only its paths
    from forex_diffusion.config.sssd_config import SSSDConfig

ENV_PREFIX = "FOREX_DIFFUSION_"
ENV_DATA_DIR = f"{ENV_PREFIX}DATA_DIR"
ENV_DB_URL = f"{ENV_PREFIX}DB_URL"
ENV_ARTIFACTS_DIR = f"{ENV_PREFIX}ARTIFACTS_DIR"
DEFAULT_DATA_DIR = "data"
DEFAULT_ARTIFACTS_DIR = "artifacts"
DEFAULT_DB_FILENAME = "registry.db"


class Settings(BaseSettings):
    """Flags and ``FOREX_DIFFUSION_*`` variables; ``None`` where neither gives a value.

    Build it with :meth:`from_flags`; the config layer and the defaults are applied by
    :meth:`data_dir_for` and :meth:`db_url_for`.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_ignore_empty=True, extra="ignore", frozen=True
    )

    data_dir: Path | None = None
    artifacts_dir: Path | None = None
    db_url: str | None = None

    @field_validator("db_url")
    @classmethod
    def _blank_url_is_unset(cls, value: str | None) -> str | None:
        return (value.strip() or None) if value is not None else None

    @classmethod
    def from_flags(
        cls,
        *,
        data_dir: str | Path | None = None,
        db_url: str | None = None,
        artifacts_dir: str | Path | None = None,
    ) -> Settings:
        """The settings with the given flags over the environment (None or "" = not given)."""
        flags: dict[str, Any] = {}
        if data_dir is not None and str(data_dir) != "":
            flags["data_dir"] = Path(data_dir)
        if artifacts_dir is not None and str(artifacts_dir) != "":
            flags["artifacts_dir"] = Path(artifacts_dir)
        if db_url:
            flags["db_url"] = db_url
        return cls(**flags)

    def data_dir_for(self, config: SSSDConfig | None = None) -> Path:
        """The candle store root: this object's ``data_dir`` > ``config.paths.data_dir`` >
        ``data`` (``~`` expanded)."""
        if self.data_dir is not None:
            return self.data_dir.expanduser()
        if config is not None:
            return Path(config.paths.data_dir).expanduser()
        return Path(DEFAULT_DATA_DIR)

    def db_url_for(self, config: SSSDConfig | None = None) -> str:
        """The registry URL: this object's ``db_url`` > ``config.paths.db_url`` > the SQLite
        file under this object's ``artifacts_dir`` > ``config.paths.artifacts_dir``
        (``artifacts`` without a config)."""
        if self.db_url:
            return self.db_url
        if config is not None and config.paths.db_url:
            return config.paths.db_url
        artifacts = self.artifacts_dir or Path(
            config.paths.artifacts_dir if config is not None else DEFAULT_ARTIFACTS_DIR
        )
        return f"sqlite:///{(artifacts / DEFAULT_DB_FILENAME).absolute()}"
