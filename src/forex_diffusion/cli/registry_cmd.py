"""``forex-diffusion registry list|show|mark-stale`` and ``forex-diffusion db upgrade|current|downgrade``.

The database URL: ``--db-url`` > env FOREX_DIFFUSION_DB_URL > config ``paths.db_url`` >
``<paths.artifacts_dir>/registry.db``. The config is only read when neither of the first two
is given.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import Engine

from forex_diffusion.assets import normalize_asset
from forex_diffusion.cli.common import (
    AssetConfigOpt,
    ConfigOpt,
    OverrideOpt,
    friendly_errors,
    load_cli_config,
)
from forex_diffusion.config.sssd_config import DEFAULT_CONFIG_PATH
from forex_diffusion.registry.db import (
    create_registry_engine,
    current_revision,
    downgrade,
    head_revision,
    mask_url,
    upgrade,
)
from forex_diffusion.registry.records import CheckpointRecord, MetricRecord, RunRecord
from forex_diffusion.registry.report import registry_report
from forex_diffusion.registry.repository import Registry
from forex_diffusion.settings import ENV_DB_URL, Settings

registry_app = typer.Typer(
    help="Inspect the model registry (models, runs, checkpoints, metrics).", no_args_is_help=True
)
db_app = typer.Typer(
    help="Registry database schema: upgrade, current revision.", no_args_is_help=True
)

DbUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--db-url", help=f"SQLAlchemy URL of the registry (default: env {ENV_DB_URL}, config)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _url(
    db_url: str | None, config: Path, asset_config: Path | None, override: list[str] | None
) -> str:
    settings = Settings.from_flags(db_url=db_url)
    cfg = None if settings.db_url else load_cli_config(config, asset_config, override)
    return settings.db_url_for(cfg)


def _fmt(value: float | None, digits: int = 5) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


@registry_app.command("list")
def list_models(
    asset: Annotated[str | None, typer.Option("--asset", "-a", help="Only this asset.")] = None,
    db_url: DbUrlOpt = None,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    asset_config: AssetConfigOpt = None,
    override: OverrideOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List registered models with their best checkpoint and latest run, then the latest
    baseline evaluations (text output; --json lists the models)."""
    with friendly_errors(), Registry(_url(db_url, config, asset_config, override)) as reg:
        models = reg.list_models(asset)
        best: dict[int, CheckpointRecord] = {
            c.model_id: c for c in reg.list_checkpoints(best_only=True)
        }
        last_run: dict[int, RunRecord] = {}
        for run in reg.list_runs():  # newest first
            last_run.setdefault(run.model_id, run)
        if as_json:
            payload: list[dict[str, Any]] = [
                {
                    **m.to_dict(),
                    "best_checkpoint": best[m.id].to_dict() if m.id in best else None,
                    "last_run": last_run[m.id].to_dict() if m.id in last_run else None,
                }
                for m in models
            ]
            typer.echo(json.dumps(payload, indent=2))
            return
        baselines = reg.latest_baseline_metrics(asset)
        if not models:
            assets = reg.known_assets()
            where = f" for asset {normalize_asset(asset)}" if asset else ""
            known = f" (registered assets: {', '.join(assets)})" if assets and asset else ""
            typer.echo(f"no models registered{where} in {reg.masked_url}{known}")
            _print_baselines(baselines)
            return
        rows = []
        for m in models:
            ckpt, latest = best.get(m.id), last_run.get(m.id)
            rows.append(
                [
                    str(m.id),
                    m.asset,
                    m.model_name,
                    m.model_type,
                    _fmt(ckpt.val_loss) if ckpt else "-",
                    str(ckpt.epoch) if ckpt else "-",
                    f"{latest.status} ({latest.run_name})" if latest else "-",
                    f"{m.created_at:%Y-%m-%d %H:%M}",
                ]
            )
        headers = ["ID", "ASSET", "MODEL", "TYPE", "BEST_VAL_LOSS", "EPOCH", "LAST_RUN", "CREATED"]
        typer.echo(_table(headers, rows))
        _print_baselines(baselines)


def _print_baselines(baselines: list[MetricRecord]) -> None:
    """The latest baseline evaluations (rows without a model), one line per method and horizon."""
    if not baselines:
        return
    typer.echo(f"\nbaseline evaluations ({len(baselines)}):")
    rows = [
        [
            m.asset,
            m.method,
            str(m.horizon),
            f"{m.window_start:%Y-%m-%d}..{m.window_end:%Y-%m-%d}",
            str(m.n_forecasts),
            _metric_cells(m.metrics),
        ]
        for m in baselines
    ]
    headers = ["ASSET", "METHOD", "HORIZON", "WINDOW", "N", "METRICS"]
    typer.echo(_indent(_table(headers, rows)))


def _metric_cells(metrics: dict[str, Any]) -> str:
    parts = []
    for key, value in list(metrics.items())[:6]:
        shown = (
            _fmt(value, 4)
            if isinstance(value, int | float) and not isinstance(value, bool)
            else value
        )
        parts.append(f"{key}={shown}")
    return " ".join(parts)


def _print_show(data: dict[str, Any]) -> None:
    typer.echo(f"asset {data['asset']}  ({data['database']})")
    if not data["models"]:
        typer.echo("no model registered (baseline evaluations only)")
    for entry in data["models"]:
        model = entry["model"]
        typer.echo("")
        typer.echo(
            f"model {model['model_name']} (id {model['id']}, {model['model_type']}), created {model['created_at']}"
        )
        typer.echo(f"  horizons: {json.dumps(model['horizon_config'])}")
        best = entry["best_checkpoint"]
        typer.echo(
            f"  best checkpoint: {best['path']} (epoch {best['epoch']}, val_loss {_fmt(best['val_loss'])})"
            if best
            else "  best checkpoint: -"
        )
        typer.echo(f"  runs ({entry['n_runs']}):")
        rows = [
            [
                str(r["id"]),
                r["run_name"],
                r["status"],
                str(r["epochs"] if r["epochs"] is not None else "-"),
                _fmt(r["final_val_loss"]),
                r["device"],
                r["started_at"][:19],
                (r["error_message"] or "")[:60],
            ]
            for r in entry["runs"]
        ]
        if rows:
            typer.echo(
                _indent(
                    _table(
                        [
                            "ID",
                            "NAME",
                            "STATUS",
                            "EPOCHS",
                            "VAL_LOSS",
                            "DEVICE",
                            "STARTED",
                            "ERROR",
                        ],
                        rows,
                    )
                )
            )
        typer.echo(f"  checkpoints ({len(entry['checkpoints'])}):")
        rows = [
            [
                "*" if c["is_best"] else "",
                str(c["epoch"]),
                _fmt(c["train_loss"]),
                _fmt(c["val_loss"]),
                str(c["size_bytes"]),
                c["path"],
            ]
            for c in entry["checkpoints"]
        ]
        if rows:
            typer.echo(
                _indent(_table(["BEST", "EPOCH", "TRAIN_LOSS", "VAL_LOSS", "BYTES", "PATH"], rows))
            )
        _print_metrics("  latest metrics", entry["latest_metrics"])
        inference = entry["inference"]
        latest = inference["latest"]
        typer.echo(
            f"  inferences: {inference['count']}"
            + (
                f", latest at {latest['decision_time']} ({_fmt(latest['inference_time_ms'])} ms)"
                if latest
                else ""
            )
        )
    _print_metrics("\nbaseline metrics", data["baseline_metrics"])


def _print_metrics(title: str, metrics: list[dict[str, Any]]) -> None:
    typer.echo(f"{title} ({len(metrics)}):")
    rows = [
        [
            m["method"],
            str(m["horizon"]),
            f"{m['window_start'][:10]}..{m['window_end'][:10]}",
            str(m["n_forecasts"]),
            _metric_cells(m["metrics"]),
        ]
        for m in metrics
    ]
    if rows:
        typer.echo(_indent(_table(["METHOD", "HORIZON", "WINDOW", "N", "METRICS"], rows)))


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


@registry_app.command("show")
def show(
    asset: Annotated[str, typer.Argument(help="Asset symbol, e.g. EURUSD.")],
    model: Annotated[
        str | None, typer.Argument(help="Model name (default: all of the asset).")
    ] = None,
    db_url: DbUrlOpt = None,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    asset_config: AssetConfigOpt = None,
    override: OverrideOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Models of an asset with their runs, checkpoints, latest metrics and inference activity,
    and the latest baseline evaluations."""
    with friendly_errors(), Registry(_url(db_url, config, asset_config, override)) as reg:
        data = registry_report(reg, asset, model)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        _print_show(data)


@registry_app.command("mark-stale")
def mark_stale(
    older_than_hours: Annotated[
        float | None,
        typer.Option(help="Also mark runs of other hosts that started longer ago than this."),
    ] = None,
    db_url: DbUrlOpt = None,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    asset_config: AssetConfigOpt = None,
    override: OverrideOpt = None,
) -> None:
    """Mark runs left `running` by a dead process as `interrupted`."""
    older = None if older_than_hours is None else timedelta(hours=older_than_hours)
    with friendly_errors(), Registry(_url(db_url, config, asset_config, override)) as reg:
        marked = reg.mark_stale_runs_interrupted(older_than=older)
    for run in marked:
        typer.echo(
            f"run {run.id} ({run.asset}/{run.model_name} {run.run_name}): interrupted: {run.error_message}"
        )
    typer.echo(f"{len(marked)} run(s) marked interrupted")


@contextmanager
def _engine(url: str) -> Iterator[Engine]:
    engine = create_registry_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def _migrate(url: str, step: Callable[[Engine, str], None], revision: str) -> None:
    """Run ``step`` (upgrade or downgrade) to ``revision`` and print the revision change."""
    with friendly_errors(), _engine(url) as engine:
        before = current_revision(engine)
        step(engine, revision)
        after = current_revision(engine)
    typer.echo(f"{mask_url(url)}: {before or '(empty)'} -> {after or '(empty)'}")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
    db_url: DbUrlOpt = None,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    asset_config: AssetConfigOpt = None,
    override: OverrideOpt = None,
) -> None:
    """Migrate the registry database to the newest schema (or --revision)."""
    with friendly_errors():
        url = _url(db_url, config, asset_config, override)
    _migrate(url, upgrade, revision)


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[
        str, typer.Argument(help="Target revision ('base' drops every registry table).")
    ],
    db_url: DbUrlOpt = None,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    asset_config: AssetConfigOpt = None,
    override: OverrideOpt = None,
) -> None:
    """Migrate the registry database down to REVISION."""
    with friendly_errors():
        url = _url(db_url, config, asset_config, override)
    _migrate(url, downgrade, revision)


@db_app.command("current")
def db_current(
    db_url: DbUrlOpt = None,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    asset_config: AssetConfigOpt = None,
    override: OverrideOpt = None,
) -> None:
    """Print the schema revision of the registry database and the newest one available."""
    with friendly_errors():
        url = _url(db_url, config, asset_config, override)
        with _engine(url) as engine:
            current = current_revision(engine)
    head = head_revision()
    state = "up to date" if current == head else "behind: run `forex-diffusion db upgrade`"
    typer.echo(f"{mask_url(url)}: current {current or '(empty)'}, head {head} ({state})")
