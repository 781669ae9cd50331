"""``forex-diffusion serve``: the HTTP service (FastAPI + uvicorn)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from forex_diffusion.cli.common import (
    ArtifactsDirOpt,
    ConfigOpt,
    DataDirOpt,
    DbUrlOpt,
    Locations,
    OverrideOpt,
    PresetOpt,
    friendly_errors,
    load_cli_config,
)
from forex_diffusion.config.presets import DEFAULT_CONFIG_PATH

# forex_diffusion.service.settings.TOKEN_ENV (a test checks they agree), written out so that
# --help does not import the service stack
TOKEN_ENV = "FOREX_DIFFUSION_API_TOKEN"


def serve(
    host: Annotated[
        str, typer.Option("--host", help="Address to bind; a non-loopback one needs a token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535)] = 8000,
    asset: Annotated[
        list[str] | None,
        typer.Option("--asset", "-a", help="Asset served live from the start (repeatable)."),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model name (default: best checkpoint).")
    ] = None,
    token_env: Annotated[
        str, typer.Option("--token-env", help="Environment variable holding the bearer token.")
    ] = TOKEN_ENV,
    device: Annotated[
        str | None, typer.Option("--device", help="auto, cpu or cuda (default inference.device).")
    ] = None,
    max_jobs: Annotated[
        int, typer.Option("--max-jobs", min=1, help="Training/evaluation jobs at a time.")
    ] = 1,
    no_batching: Annotated[
        bool, typer.Option("--no-batching", help="Run predict requests one at a time.")
    ] = False,
    compile_sampling: Annotated[
        bool,
        typer.Option(
            "--compile",
            help="Compile each model's sampling loop, encoder and streaming update when it "
            "loads (slower start, faster live and single forecasts).",
        ),
    ] = False,
    data_dir: DataDirOpt = None,
    artifacts_dir: ArtifactsDirOpt = None,
    db_url: DbUrlOpt = None,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    preset: PresetOpt = None,
    override: OverrideOpt = None,
) -> None:
    """Serve forecasts over HTTP: /v1/predict, /v1/bars, live SSE on /v1/stream/{asset}, jobs.

    Binds 127.0.0.1 by default. With a token in $FOREX_DIFFUSION_API_TOKEN (or --token-env),
    every endpoint but /health needs 'Authorization: Bearer <token>'; a non-loopback --host is
    refused without one. OpenAPI at /openapi.json, docs at /docs.
    """
    import uvicorn

    from forex_diffusion.service.app import create_app
    from forex_diffusion.service.settings import Batching, ServiceSettings

    with friendly_errors():
        cfg = load_cli_config(
            config, None, override, preset=preset, where=Locations(data_dir, artifacts_dir, db_url)
        )
        settings = ServiceSettings(
            config=cfg,
            host=host,
            port=port,
            token=os.environ.get(token_env) or None,
            assets=tuple(a.upper() for a in asset or ()),
            model_name=model,
            device=device,
            data_dir=data_dir,
            db_url=db_url,
            max_jobs=max_jobs,
            batching=Batching(enabled=not no_batching),
            compile_sampling=compile_sampling,
        )
        app = create_app(settings)
    uvicorn.run(app, host=host, port=port, log_level="info")
