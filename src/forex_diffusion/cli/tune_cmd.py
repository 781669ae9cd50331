"""``forex-diffusion tune``: hyperparameter search with Ray Tune (Optuna + ASHA on val CRPS)."""

from __future__ import annotations

import json
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
from forex_diffusion.cli.progress import steps
from forex_diffusion.cli.train_many_cmd import AddressOpt, CpusOpt, DbUrlOpt, GpusOpt
from forex_diffusion.config.presets import DEFAULT_CONFIG_PATH


def tune(
    asset: Annotated[str, typer.Option("--asset", "-a", help="Asset symbol, e.g. EURUSD.")],
    trials: Annotated[int, typer.Option("--trials", min=1, help="Number of trials.")] = 32,
    space: Annotated[
        Path | None,
        typer.Option("--space", help="Search space YAML (dotted config keys → distributions)."),
    ] = None,
    export: Annotated[
        Path | None, typer.Option("--export", help="Write the best configuration here (YAML).")
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
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", min=1, help="Trials at once (default: as resources allow)."),
    ] = None,
    grace_period: Annotated[
        int, typer.Option("--grace-period", min=1, help="ASHA: epochs before a trial can stop.")
    ] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the Optuna sampler.")] = 0,
) -> None:
    """Search the configuration's own keys with Optuna, stopping weak trials early with ASHA on
    the validation CRPS; each trial is trained by the `train` function and recorded in the
    registry. Prints one JSON summary (trials, best)."""
    from forex_diffusion.data.store import resolve_data_dir
    from forex_diffusion.registry.db import resolve_db_url
    from forex_diffusion.scale.cluster import ClusterRequest
    from forex_diffusion.scale.paths import absolute_paths
    from forex_diffusion.scale.search_space import load_search_space
    from forex_diffusion.scale.tune import TuneRequest, export_best, run_tune

    with friendly_errors():
        where = Locations(data_dir, artifacts_dir, db_url)
        base = absolute_paths(
            load_cli_config(config, asset_config, override, asset=asset, preset=preset, where=where)
        )
        request = TuneRequest(
            base=base,
            space=load_search_space(space, base),
            trials=trials,
            data_dir=str(Path(resolve_data_dir(base, data_dir)).absolute()),
            db_url=resolve_db_url(db_url, base),
            cluster=ClusterRequest(
                address, cpus_per_job, gpus_per_job, min(trials, concurrency or trials)
            ),
            grace_period=grace_period,
            max_concurrent=concurrency,
            seed=seed,
        )
        outcome = run_tune(request, steps)
        if export is not None:
            export_best(outcome, base, export)
    typer.echo(json.dumps(outcome.to_dict(), indent=2))
    if outcome.best is None:
        raise typer.Exit(code=1)
