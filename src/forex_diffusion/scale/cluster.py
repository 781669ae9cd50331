"""Connecting to Ray (a local instance or a cluster) and checking that its workers can share
the registry and files the driver names."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from sqlalchemy.engine import make_url

from forex_diffusion.errors import ConfigError
from forex_diffusion.registry.db import mask_url


@dataclass(frozen=True)
class ClusterRequest:
    """Where to run and what each job takes.

    Args:
        address: None for a Ray started here for this command; ``auto`` or ``HOST:PORT`` to join
            a running cluster (``ray start --head`` there).
        cpus_per_job, gpus_per_job: Ray resources of one job (fractions of a GPU pack several
            jobs on one device).
        jobs: how many jobs there are (sizes a local Ray: cpus_per_job × jobs, at most the
            machine's cores).
        max_parallel: at most this many jobs at once on a local Ray (None: as many as fit).
    """

    address: str | None = None
    cpus_per_job: float = 1.0
    gpus_per_job: float = 0.0
    jobs: int = 1
    max_parallel: int | None = None

    def local_cpus(self) -> int:
        """CPUs of a local Ray: enough for every job at once (or ``max_parallel`` of them),
        bounded by the machine."""
        parallel = self.jobs if self.max_parallel is None else min(self.jobs, self.max_parallel)
        wanted = max(1, math.ceil(self.cpus_per_job * max(1, parallel)))
        return min(wanted, os.cpu_count() or 1)

    def sized(self, jobs: int) -> ClusterRequest:
        """The same request for ``jobs`` jobs."""
        return replace(self, jobs=jobs)


def _require_ray() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ConfigError(
            "Ray is not installed: pip install -e '.[scale]' (ray[tune], optuna, mlflow)"
        ) from None


@dataclass(frozen=True)
class ClusterInfo:
    """The hosts of the live Ray nodes and this (the driver's) host."""

    hosts: list[str]
    local_host: str

    @property
    def remote_hosts(self) -> list[str]:
        return [h for h in self.hosts if h != self.local_host]


@contextmanager
def ray_session(request: ClusterRequest) -> Iterator[ClusterInfo]:
    """Ray for the duration of the block; yields where its nodes are.

    A local Ray gets ``request.local_cpus()`` CPUs and the GPUs torch sees; it is shut down at
    the end. A cluster (``address``) is only disconnected from.
    """
    _require_ray()
    import ray

    if request.address is None:
        import torch

        ray.init(
            num_cpus=request.local_cpus(),
            num_gpus=torch.cuda.device_count(),
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            object_store_memory=200 * 1024**2,
        )
    else:
        try:
            ray.init(address=request.address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError) as exc:
            raise ConfigError(
                f"cannot join the Ray cluster at {request.address!r}: {exc}. Start one with "
                "`ray start --head` on the head node (and `ray start --address=HEAD:6379` on the "
                "others), or leave --address out to run on this machine."
            ) from None
    try:
        hosts = sorted({str(n["NodeManagerAddress"]) for n in ray.nodes() if n.get("Alive")})
        yield ClusterInfo(hosts, str(ray.util.get_node_ip_address()))
    finally:
        ray.shutdown()


def check_shared_registry(db_url: str, cluster: ClusterInfo) -> None:
    """Refuse a SQLite registry when some of Ray's workers run on another host.

    Raises:
        ConfigError: naming the fix (a PostgreSQL URL in FOREX_DIFFUSION_DB_URL or paths.db_url).
    """
    remote = cluster.remote_hosts
    if not remote or make_url(db_url).get_backend_name() != "sqlite":
        return
    raise ConfigError(
        f"the registry {mask_url(db_url)} is a SQLite file on this host, but the Ray cluster has "
        f"workers on other hosts ({', '.join(remote)}), which cannot share it. Point every worker at "
        "one PostgreSQL registry: export FOREX_DIFFUSION_DB_URL="
        "postgresql+psycopg://USER:PASSWORD@HOST:5432/forex_diffusion (or set paths.db_url), "
        "then run `forex-diffusion db upgrade` once."
    )
