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
from typing import TYPE_CHECKING, Annotated, Any

import typer

from forex_diffusion.cli.common import (
    ArtifactsDirOpt,
    AssetConfigOpt,
    ConfigOpt,
    DbUrlOpt,
    Locations,
    OverrideOpt,
    friendly_errors,
    load_cli_config,
    wide_console,
)
from forex_diffusion.config.presets import DEFAULT_CONFIG_PATH

if TYPE_CHECKING:
    from rich.table import Table
    from sqlalchemy import Engine

    from forex_diffusion.registry.records import CheckpointRecord, MetricRecord, RunRecord
    from forex_diffusion.registry.repository import Registry

registry_app = typer.Typer(
    help="Inspect the model registry (models, runs, checkpoints, metrics).", no_args_is_help=True
)
db_app = typer.Typer(
    help="Registry database schema: upgrade, current revision.", no_args_is_help=True
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _url(
    db_url: str | None,
    config: Path,
    asset_config: Path | None,
    override: list[str] | None,
    artifacts_dir: Path | None = None,
) -> str:
    """--db-url > env > config ``paths.db_url`` > ``<artifacts>/registry.db``; the config is read
    only when neither of the first two is given."""
    where = Locations(artifacts_dir=artifacts_dir, db_url=db_url)
    settings = where.settings()
    cfg = None if settings.db_url else load_cli_config(config, asset_config, override, where=where)
    return settings.db_url_for(cfg)


def _open(
    db_url: str | None,
    config: Path,
    asset_config: Path | None,
    override: list[str] | None,
    artifacts_dir: Path | None = None,
) -> Registry:
    from forex_diffusion.registry.repository import Registry

    return Registry(
        _url(db_url, config, asset_config, override, artifacts_dir), artifacts_dir=artifacts_dir
    )


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
    artifacts_dir: ArtifactsDirOpt = None,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    asset_config: AssetConfigOpt = None,
    override: OverrideOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List registered models with their best checkpoint and latest run, then the latest
    baseline evaluations (text output; --json lists the models)."""
    from forex_diffusion.assets import normalize_asset

    with friendly_errors(), _open(db_url, config, asset_config, override, artifacts_dir) as reg:
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


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def _pct(value: Any, digits: int = 1) -> str:
    return "-" if not isinstance(value, int | float) else f"{value * 100:.{digits}f} %"


def _metrics_table(title: str, metrics: list[dict[str, Any]]) -> Table:
    """Evaluation rows as the report shows them: CRPS in basis points (of the log return),
    skill against the best baseline, coverage and directional accuracy as percentages."""
    from rich.table import Table

    table = Table(title=f"{title} ({len(metrics)})", title_justify="left")
    # a global model's rows cover several assets
    several = len({m.get("asset") for m in metrics}) > 1
    if several:
        table.add_column("asset", justify="left")
    for col in (
        "method",
        "horizon",
        "window (UTC)",
        "n",
        "CRPS (bp)",
        "skill vs best baseline",
        "90 % coverage",
        "direction hit rate",
        "MAE (pips)",
    ):
        table.add_column(col, justify="left" if col in ("method", "window (UTC)") else "right")
    for m in metrics:
        values = m["metrics"]
        crps = values.get("crps")
        mae = values.get("mae_pips")
        table.add_row(
            *([m["asset"]] if several else []),
            m["method"],
            f"{m['horizon']} min",
            f"{m['window_start'][:10]} .. {m['window_end'][:10]}",
            f"{m['n_forecasts']:,}",
            "-" if not isinstance(crps, int | float) else f"{crps * 1e4:.3f}",
            _pct(values.get("skill_vs_best")),
            _pct((values.get("coverage") or {}).get("0.9")),
            _pct(values.get("directional_accuracy")),
            "-" if not isinstance(mae, int | float) else f"{mae:.2f}",
        )
    return table


def _print_show(data: dict[str, Any], artifacts_root: Path) -> None:
    from rich.table import Table

    console = wide_console()
    console.print(
        f"[bold]{data['asset']}[/bold]  registry {data['database']}, artifacts root "
        f"{artifacts_root}",
        highlight=False,
    )
    if not data["models"]:
        console.print("no model registered (baseline evaluations only)")
    for entry in data["models"]:
        model = entry["model"]
        console.print(
            f"\n[bold]model {model['model_name']}[/bold] (id {model['id']}, "
            f"{model['model_type']}), created {model['created_at'][:19]}; horizons "
            f"{json.dumps(model['horizon_config'])}",
            highlight=False,
        )
        runs = Table(title=f"runs ({entry['n_runs']})", title_justify="left")
        for col in ("id", "name", "status", "epochs", "val loss", "device", "started", "error"):
            runs.add_column(col)
        for r in entry["runs"]:
            runs.add_row(
                str(r["id"]),
                r["run_name"],
                r["status"],
                str(r["epochs"] if r["epochs"] is not None else "-"),
                _fmt(r["final_val_loss"]),
                r["device"],
                r["started_at"][:19],
                (r["error_message"] or "")[:60],
            )
        console.print(runs)
        ckpts = Table(title=f"checkpoints ({len(entry['checkpoints'])})", title_justify="left")
        for col in ("best", "epoch", "train loss", "val loss", "size"):
            ckpts.add_column(col)
        ckpts.add_column("path", no_wrap=True)
        for c in entry["checkpoints"]:
            ckpts.add_row(
                "*" if c["is_best"] else "",
                str(c["epoch"]),
                _fmt(c["train_loss"]),
                _fmt(c["val_loss"]),
                f"{c['size_bytes'] / 1e6:.1f} MB",
                c["path"],
            )
        console.print(ckpts)
        if entry["latest_metrics"]:
            console.print(_metrics_table("latest evaluation", entry["latest_metrics"]))
        inference = entry["inference"]
        latest = inference["latest"]
        console.print(
            f"inferences: {inference['count']}"
            + (
                f", latest at {latest['decision_time']} ({_fmt(latest['inference_time_ms'])} ms)"
                if latest
                else ""
            ),
            highlight=False,
        )
    if data["baseline_metrics"]:
        console.print(_metrics_table("\nbaseline metrics", data["baseline_metrics"]))
    console.print(
        "CRPS: mean continuous ranked probability score of the log return in basis points "
        "(lower is better); skill: 1 - CRPS / CRPS of the best baseline at that horizon.",
        style="dim",
        highlight=False,
    )


@registry_app.command("show")
def show(
    asset: Annotated[str, typer.Argument(help="Asset symbol, e.g. EURUSD.")],
    model: Annotated[
        str | None, typer.Argument(help="Model name (default: all of the asset).")
    ] = None,
    db_url: DbUrlOpt = None,
    artifacts_dir: ArtifactsDirOpt = None,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    asset_config: AssetConfigOpt = None,
    override: OverrideOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Models of an asset with their runs, checkpoints, latest metrics and inference activity,
    and the latest baseline evaluations."""
    from forex_diffusion.registry.report import registry_report

    with friendly_errors(), _open(db_url, config, asset_config, override, artifacts_dir) as reg:
        data = registry_report(reg, asset, model)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        _print_show(data, reg.artifacts_root)


@registry_app.command("mark-stale")
def mark_stale(
    older_than_hours: Annotated[
        float | None,
        typer.Option(help="Also mark runs of other hosts that started longer ago than this."),
    ] = None,
    db_url: DbUrlOpt = None,
    artifacts_dir: ArtifactsDirOpt = None,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    asset_config: AssetConfigOpt = None,
    override: OverrideOpt = None,
) -> None:
    """Mark runs left `running` by a dead process as `interrupted`."""
    older = None if older_than_hours is None else timedelta(hours=older_than_hours)
    with friendly_errors(), _open(db_url, config, asset_config, override, artifacts_dir) as reg:
        marked = reg.mark_stale_runs_interrupted(older_than=older)
    for run in marked:
        typer.echo(
            f"run {run.id} ({run.asset}/{run.model_name} {run.run_name}): interrupted: {run.error_message}"
        )
    typer.echo(f"{len(marked)} run(s) marked interrupted")


@contextmanager
def _engine(url: str) -> Iterator[Engine]:
    from forex_diffusion.registry.db import create_registry_engine

    engine = create_registry_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def _migrate(url: str, step: Callable[[Engine, str], None], revision: str) -> None:
    """Run ``step`` (upgrade or downgrade) to ``revision`` and print the revision change."""
    from forex_diffusion.registry.db import current_revision, mask_url

    with friendly_errors(), _engine(url) as engine:
        before = current_revision(engine)
        step(engine, revision)
        after = current_revision(engine)
    typer.echo(f"{mask_url(url)}: {before or '(empty)'} -> {after or '(empty)'}")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
    db_url: DbUrlOpt = None,
    artifacts_dir: ArtifactsDirOpt = None,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    asset_config: AssetConfigOpt = None,
    override: OverrideOpt = None,
) -> None:
    """Migrate the registry database to the newest schema (or --revision)."""
    from forex_diffusion.registry.db import upgrade

    with friendly_errors():
        url = _url(db_url, config, asset_config, override, artifacts_dir)
    _migrate(url, upgrade, revision)


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[
        str, typer.Argument(help="Target revision ('base' drops every registry table).")
    ],
    db_url: DbUrlOpt = None,
    artifacts_dir: ArtifactsDirOpt = None,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    asset_config: AssetConfigOpt = None,
    override: OverrideOpt = None,
) -> None:
    """Migrate the registry database down to REVISION."""
    from forex_diffusion.registry.db import downgrade

    with friendly_errors():
        url = _url(db_url, config, asset_config, override, artifacts_dir)
    _migrate(url, downgrade, revision)


@db_app.command("current")
def db_current(
    db_url: DbUrlOpt = None,
    artifacts_dir: ArtifactsDirOpt = None,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    asset_config: AssetConfigOpt = None,
    override: OverrideOpt = None,
) -> None:
    """Print the schema revision of the registry database and the newest one available."""
    from forex_diffusion.registry.db import current_revision, head_revision, mask_url

    with friendly_errors():
        url = _url(db_url, config, asset_config, override, artifacts_dir)
        with _engine(url) as engine:
            current = current_revision(engine)
    head = head_revision()
    state = "up to date" if current == head else "behind: run `forex-diffusion db upgrade`"
    typer.echo(f"{mask_url(url)}: current {current or '(empty)'}, head {head} ({state})")
