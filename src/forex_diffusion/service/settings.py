"""``ServiceSettings``: what the HTTP service binds to, serves, and how it bounds requests."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from forex_diffusion.config.sssd_config import SSSDConfig
from forex_diffusion.errors import ConfigError

TOKEN_ENV = "FOREX_DIFFUSION_API_TOKEN"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Limits(_Section):
    """Per-request bounds; a request beyond one gets a 4xx ``LimitError`` naming it."""

    max_body_bytes: int = Field(8_000_000, ge=1_000)
    max_candles: int = Field(60_000, ge=1)
    max_num_samples: int = Field(1_000, ge=2)
    max_steps: int = Field(200, ge=1)


class Batching(_Section):
    """Dynamic batching of concurrent predict requests of one model and sampling setting."""

    enabled: bool = True
    max_batch: int = Field(32, ge=1, le=1024)
    max_wait_ms: float = Field(5.0, ge=0.0, le=1_000.0)
    queue_size: int = Field(256, ge=1)


class Live(_Section):
    """Live forecasts on every new 5m bar.

    ``reprime_every``: 5m bars between two re-primes of the streaming encoder (1 = re-encode
    the windows on every bar); ``seed``: the forecast for decision time t samples with a
    generator seeded from (seed, t), so a live forecast is reproducible; ``queue``: events
    buffered per subscriber (the oldest is dropped when a slow client falls behind).
    """

    reprime_every: int = Field(12, ge=1)
    num_samples: int | None = Field(None, ge=2)
    seed: int = 0
    queue: int = Field(64, ge=1)


class ServiceSettings(BaseModel):
    """Everything ``create_app`` needs.

    ``config``: the model configuration (paths: store, registry, checkpoints; inference
    defaults). ``token``: when set, every endpoint but ``/health`` needs
    ``Authorization: Bearer <token>``; a non-loopback ``host`` requires one. ``assets``: assets
    whose live state starts with the service. ``data_dir``, ``db_url``: the store and the
    registry (None: the environment, then ``config.paths``). ``max_jobs``: training/evaluation worker
    processes at a time. ``compile_sampling``: compile each model's sampling loop for one
    forecast (the live forecast's and a default request's sample count), its encoder for one
    forecast's windows and its streaming encoder update when it loads, which makes loading
    slower (a compile) and those forecasts faster; other shapes stay eager.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    config: SSSDConfig
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    token: str | None = None
    assets: tuple[str, ...] = ()
    model_name: str | None = None
    device: str | None = None
    data_dir: Path | None = None
    db_url: str | None = None
    jobs_dir: Path | None = None
    max_jobs: int = Field(1, ge=1, le=64)
    log_tail_lines: int = Field(40, ge=1, le=1000)
    limits: Limits = Limits()
    batching: Batching = Batching()
    live: Live = Live()
    compile_sampling: bool = False

    def checked(self) -> ServiceSettings:
        """Self, after refusing an exposed host without a token.

        Raises:
            ConfigError: a host that is not loopback and no token configured.
        """
        if self.token is not None and len(self.token) < 16:
            raise ConfigError("the API token must be at least 16 characters long")
        if not is_loopback(self.host) and not self.token:
            raise ConfigError(
                f"refusing to serve on {self.host!r} without a token: a non-loopback host "
                f"exposes the service; set {TOKEN_ENV} (or --token-env) or bind 127.0.0.1"
            )
        return self

    @property
    def resolved_jobs_dir(self) -> Path:
        return self.jobs_dir or Path(self.config.paths.artifacts_dir) / "jobs"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
