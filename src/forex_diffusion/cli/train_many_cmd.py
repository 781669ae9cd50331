"""``forex-diffusion train-many``: one training per asset on Ray."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from forex_diffusion.cli.common import (
    ArtifactsDirOpt,
    AssetConfigOpt,
    ConfigOpt,
    DataDirOpt,
    Locations,
    OverrideOpt,
    PresetOpt,
    friendly_errors,
    load_cli_config,
)
from forex_diffusion.config.presets import DEFAULT_CONFIG_PATH

AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="Ray cluster to join: auto or HOST:PORT (`ray start --head` there). "
        "Default: a Ray started on this machine for this command.",
    ),
]
CpusOpt = Annotated[float, typer.Option("--cpus-per-job", min=0.01, help="Ray CPUs per job.")]
GpusOpt = Annotated[
    float, typer.Option("--gpus-per-job", min=0.0, help="Ray GPUs per job (0.25 packs four).")
]
DbUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--db-url",
        help="Registry URL every worker uses (default: env FOREX_DIFFUSION_DB_URL, "
        "then paths.db_url); a cluster needs PostgreSQL.",
    ),
]


def train_many(
    assets: Annotated[
        list[str], typer.Option("--assets", help="Assets to train, e.g. --assets EURUSD GBPUSD.")
    ],
    more: Annotated[
        list[str] | None,
        typer.Argument(
            help="More assets after the first (--assets A B C), and more key=value overrides "
            "after the first --override.",
            show_default=False,
        ),
    ] = None,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    asset_config: AssetConfigOpt = None,
    preset: PresetOpt = None,
    override: OverrideOpt = None,
    data_dir: DataDirOpt = None,
    artifacts_dir: ArtifactsDirOpt = None,
    address: AddressOpt = None,
    cpus_per_job: CpusOpt = 1.0,
    gpus_per_job: GpusOpt = 0.0,
    db_url: DbUrlOpt = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Skip jobs whose last run completed; continue the others."),
    ] = False,
) -> None:
    """Train one model per asset as Ray tasks (the `train` command's function in each), all
    recorded in one registry; prints a live table, then one JSON outcome per job."""
    from forex_diffusion.data.store import resolve_data_dir
    from forex_diffusion.registry.db import resolve_db_url
    from forex_diffusion.scale.cluster import ClusterRequest
    from forex_diffusion.scale.jobs import TrainJob, outcomes_json
    from forex_diffusion.scale.paths import absolute_paths
    from forex_diffusion.scale.train_many import train_many as run_train_many

    extra = list(more or ())
    override = [*(override or ()), *(x for x in extra if "=" in x)]
    where = Locations(data_dir, artifacts_dir, db_url)
    with friendly_errors():
        jobs = []
        url = None
        for asset in _split([*assets, *(x for x in extra if "=" not in x)]):
            cfg = absolute_paths(
                load_cli_config(
                    config, asset_config, override, asset=asset, preset=preset, where=where
                )
            )
            url = url or resolve_db_url(db_url, cfg)
            store = str(Path(resolve_data_dir(cfg, data_dir)).absolute())
            jobs.append(TrainJob.from_config(cfg, data_dir=store))
        assert url is not None
        request = ClusterRequest(address, cpus_per_job, gpus_per_job, len(jobs))
        outcomes = run_train_many(jobs, request, url, resume=resume)
    typer.echo(outcomes_json(outcomes))
    if any(o.status not in ("completed", "skipped") for o in outcomes):
        raise typer.Exit(code=1)


def _split(assets: list[str]) -> list[str]:
    """Asset symbols, upper case, in order, without repeats (``A,B`` also splits)."""
    out = [a.strip().upper() for item in assets for a in item.split(",") if a.strip()]
    if not out:
        raise typer.BadParameter("give at least one asset", param_hint="--assets")
    return list(dict.fromkeys(out))
