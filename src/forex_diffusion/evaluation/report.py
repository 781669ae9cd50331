"""Write the evaluation report: report.md, metrics.json and PNG plots (SPEC §7).

The first table of report.md is per horizon and forecaster: CRPS, skill against the best
baseline, 90 % coverage, directional accuracy, Pesaran–Timmermann and Diebold–Mariano
p-values; below it, one plain sentence per horizon says whether the model beats the best
baseline, loses to it, or cannot be told apart (or that only baselines were evaluated).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from forex_diffusion.evaluation.conditional_coverage import PHASES, SESSIONS, TERCILES, CoverageCell
from forex_diffusion.evaluation.summary import EvaluationSummary, FanChartData
from forex_diffusion.fileio import atomic_write, atomic_write_text


@dataclass(frozen=True)
class ReportFiles:
    """Paths of the written files (``fan_chart`` is None without fan-chart data)."""

    report: Path
    metrics: Path
    reliability: Path
    pit_histogram: Path
    crps_by_hour: Path
    fan_chart: Path | None


def _fmt(x: float | None, spec: str = ".3f", scale: float = 1.0) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return format(x * scale, spec)


def _save(fig: Figure, path: Path) -> None:
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    finally:
        plt.close(fig)


def _plain_label(s: EvaluationSummary, name: str, horizon: int) -> str:
    """A forecaster's label, the best baseline of the horizon named (a figure's legend)."""
    label = s.labels.get(name, name)
    if name == s.verdict(horizon).best_baseline:
        return f"{label} (best baseline)"
    return label


def _row_label(s: EvaluationSummary, name: str, horizon: int) -> str:
    """A table row's label: ``_plain_label`` with the model in bold."""
    if name == s.model_name:
        return f"**{s.labels.get(name, name)}** (model)"
    return _plain_label(s, name, horizon)


def _first_table(s: EvaluationSummary) -> list[str]:
    lines = [
        "| Horizon | Forecaster | CRPS (bp) | Skill vs best baseline | Coverage 90 % "
        "| Directional accuracy | PT p | DM p vs best |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for h in s.horizons:
        for name in s.forecasters:
            m = s.get(name, h)
            label = _row_label(s, name, h)
            dm = "—" if m.dm is None else _fmt(m.dm.p_value, ".3g")
            da = _fmt(m.directional_accuracy, ".1%") if m.n_directional else "n/a (no direction)"
            lines.append(
                f"| {h} min | {label} | {_fmt(m.crps, '.4f', 1e4)} | {_fmt(m.skill_vs_best, '+.1%')} "
                f"| {_fmt(m.coverage.get('0.9'), '.1%')} | {da} | {_fmt(m.pt_pvalue, '.3g')} | {dm} |"
            )
    return lines


def _detail_tables(s: EvaluationSummary) -> list[str]:
    levels = [f"{lv:g}" for lv in s.coverage_levels]
    lines = [
        "## Calibration and point accuracy",
        "",
        "| Horizon | Forecaster | n | "
        + " | ".join(f"Cov {float(lv):.0%}" for lv in levels)
        + " | wQL | PIT χ² p | MAE (pips) | RMSE (pips) |",
        "|---|---|---:|" + "---:|" * (len(levels) + 4),
    ]
    for h in s.horizons:
        for name in s.forecasters:
            m = s.get(name, h)
            cov = " | ".join(_fmt(m.coverage.get(lv), ".1%") for lv in levels)
            lines.append(
                f"| {h} min | {s.labels.get(name, name)} | {m.n} | {cov} | {_fmt(m.wql, '.4f')} "
                f"| {_fmt(m.pit_pvalue, '.3g')} | {_fmt(m.mae_pips, '.2f')} | {_fmt(m.rmse_pips, '.2f')} |"
            )
    lines += [
        "",
        "## CRPS skill against each baseline",
        "",
        "| Horizon | Forecaster | " + " | ".join(s.labels.get(b, b) for b in s.baselines) + " |",
        "|---|---|" + "---:|" * len(s.baselines),
    ]
    for h in s.horizons:
        for name in s.forecasters:
            m = s.get(name, h)
            cells = " | ".join(_fmt(m.skill.get(b), "+.1%") for b in s.baselines)
            lines.append(f"| {h} min | {s.labels.get(name, name)} | {cells} |")
    return lines


CONDITIONAL_LEVELS = (0.9, 0.5)
"""Interval levels whose coverage by volatility tercile and session the report shows (when
evaluated); metrics.json holds every evaluated level."""

PHASE_LEVEL = 0.9
"""Interval level whose coverage by phase of the hour the report shows (when evaluated)."""


def _cell_text(c: CoverageCell) -> str:
    if c.n == 0:
        return "n/a"
    flag = " ⚠" if c.outside else ""
    return f"{c.coverage:.1%} ± {c.se * 100:.1f}{flag}"


def _conditional_tables(s: EvaluationSummary) -> list[str]:
    """Coverage within each volatility tercile and trading session, one table per level."""
    cond = s.coverage_conditioning
    levels = [lv for lv in CONDITIONAL_LEVELS if any(abs(lv - c) < 1e-9 for c in s.coverage_levels)]
    if cond is None or not levels:
        return []
    source = s.labels.get(cond.sigma_source, cond.sigma_source)
    sessions = ", ".join(x.label() for x in SESSIONS)
    cuts = "; ".join(
        f"{h} min: {_fmt(lo, '.3f', 1e4)} / {_fmt(hi, '.3f', 1e4)}"
        for h, (lo, hi) in cond.cuts.items()
    )
    lines = [
        "## Coverage by volatility tercile, trading session and phase of the hour",
        "",
        f"Decision times grouped by the σ forecast of {source} for the horizon at t "
        "(terciles over the horizon's scored decision times; σ cut points low–mid / mid–high "
        f"in bp: {cuts}) and by the UTC hour of t ({sessions}; Late is the New York close and "
        "the daily rollover, kept apart from Asia). Each cell: coverage ± binomial standard "
        "error at the nominal level, √(p (1 − p) / n) in points (independent decision times "
        "assumed; overlapping horizons make it larger); ⚠ = more than "
        f"{cond.tolerance * 100:g} points from nominal.",
    ]
    names = [f"σ {t}" for t in TERCILES] + [x.label() for x in SESSIONS]
    for level in levels:
        lines += ["", f"### {level * 100:g} % intervals", ""]
        lines += _cell_table(s, names, level, ("volatility", "session"))
    if any(abs(PHASE_LEVEL - lv) < 1e-9 for lv in levels):
        lines += [
            "",
            f"### {PHASE_LEVEL * 100:g} % intervals by phase of the hour",
            "",
            "Decision times grouped by the 5-minute slot of their minute: the 5m bars that open "
            "on the full and the half hour carry the scheduled releases, so a forecaster "
            "calibrated over the hour can be too narrow there (a grid of decision times on the "
            "hour, e.g. a stride of 12, sees only the :00 column).",
            "",
        ]
        lines += _cell_table(s, list(PHASES), PHASE_LEVEL, ("phase",))
    return lines


def _cell_table(
    s: EvaluationSummary, names: list[str], level: float, dimensions: tuple[str, ...]
) -> list[str]:
    """One row per horizon and forecaster of the ``dimensions`` cells at ``level``, below a
    row of the cells' decision-time counts."""
    lines = [
        "| Horizon | Forecaster | " + " | ".join(names) + " |",
        "|---|---|" + "---:|" * len(names),
    ]
    for h in s.horizons:
        for k, name in enumerate(s.forecasters):
            cells = [
                c
                for c in s.get(name, h).coverage_by_cell
                if abs(c.level - level) < 1e-9 and c.dimension in dimensions
            ]
            if k == 0:
                counts = " | ".join(str(c.n) for c in cells)
                lines.append(f"| {h} min | n (decision times) | {counts} |")
            label = _row_label(s, name, h)
            lines.append(
                f"| {h} min | {label} | " + " | ".join(_cell_text(c) for c in cells) + " |"
            )
    return lines


def first_table_text(s: EvaluationSummary) -> str:
    """The report's first table and the verdicts, for printing on a terminal."""
    who = f"model {s.model_name}" if s.model_name else "baselines only (no model)"
    lines = [
        f"{s.asset} {s.start} → {s.end}: {who}, {s.n_decisions} decision times "
        f"(every {s.stride} × 5 min); CRPS in basis points of the log return.",
        "",
        *_first_table(s),
        "",
        *[f"- {v.sentence}" for v in s.verdicts],
    ]
    return "\n".join(lines) + "\n"


def render_markdown(s: EvaluationSummary, has_fan_chart: bool) -> str:
    """The report text."""
    title = f"# Evaluation: {s.asset}, {s.start} → {s.end}"
    who = (
        f"Model **{s.labels.get(s.model_name, s.model_name)}** against {len(s.baselines)} baselines."
        if s.model_name
        else "**Baselines only: no model was evaluated**, so no row of the table is a model."
    )
    lines = [
        title,
        "",
        who,
        f"{s.n_decisions} decision times (every {s.stride} × 5 min); CRPS of the log return in "
        "basis points (1 bp = 1e-4); skill = 1 − CRPS / CRPS(best baseline); DM = Diebold–Mariano "
        "on CRPS against the best baseline (Newey–West lag from the horizon overlap"
        + (
            "; Harvey–Leybourne–Newbold corrected"
            if any(m.dm and m.dm.hln for m in s.metrics)
            else ""
        )
        + "); PT = one-sided Pesaran–Timmermann test of the median's direction (n/a for zero-mean "
        "forecasts, which have no direction).",
        "",
        *_first_table(s),
        "",
        "## Verdict",
        "",
        *[f"- {v.sentence}" for v in s.verdicts],
        "",
        *_detail_tables(s),
        "",
        *_conditional_tables(s),
        "",
        "## Plots",
        "",
    ]
    if s.model_name:
        lines += [
            "The reliability, PIT and CRPS-by-hour panels draw the model, its raw and "
            "adaptive-conformal rows and each horizon's best baseline; the tables above have "
            "every row.",
            "",
        ]
    if has_fan_chart:
        lines.append("![fan chart](fan_chart.png)")
    lines += [
        "![reliability diagram](reliability.png)",
        "![PIT histogram](pit_histogram.png)",
        "![CRPS by hour of day](crps_by_hour.png)",
    ]
    if s.notes:
        lines += ["", "## Notes", "", *[f"- {n}" for n in s.notes]]
    return "\n".join(lines) + "\n"


def _grid(n: int) -> tuple[Figure, list[plt.Axes]]:
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(5.5 * cols, 4.0 * rows), squeeze=False, layout="constrained"
    )
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _per_horizon_figure(
    s: EvaluationSummary, title: str, path: Path, draw: Callable[[plt.Axes, int], None]
) -> None:
    """One panel per horizon (titled "<h> min") drawn by ``draw(ax, h)``, each with its own
    legend below it (the best baseline differs between horizons)."""
    fig, axes = _grid(len(s.horizons))
    for ax, h in zip(axes, s.horizons, strict=True):
        draw(ax, h)
        ax.set_title(f"{h} min")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=2)
    fig.suptitle(f"{title}, {s.asset}")
    _save(fig, path)


def plot_reliability(s: EvaluationSummary, path: Path) -> None:
    """Observed frequency of y ≤ Q_q against the nominal level q, per horizon."""
    q = np.asarray(s.quantile_levels)

    def draw(ax: plt.Axes, h: int) -> None:
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="ideal")
        for name in s.figure_rows(h):
            rates = np.array(
                [np.nan if v is None else v for v in s.get(name, h).quantile_hit_rates]
            )
            ax.plot(q, rates, marker="o", ms=3, label=_plain_label(s, name, h))
        ax.set_xlabel("nominal quantile level")
        ax.set_ylabel("observed frequency")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)

    _per_horizon_figure(s, "Reliability diagram", path, draw)


def plot_pit(s: EvaluationSummary, path: Path) -> None:
    """PIT histograms (density; flat at 1 = calibrated), per horizon."""

    def draw(ax: plt.Axes, h: int) -> None:
        for name in s.figure_rows(h):
            counts = np.asarray(s.get(name, h).pit_histogram, dtype=np.float64)
            if counts.sum() <= 0:
                continue
            bins = counts.size
            density = counts / counts.sum() * bins
            edges = np.linspace(0, 1, bins + 1)
            ax.stairs(density, edges, label=_plain_label(s, name, h))
        ax.axhline(1.0, color="grey", lw=1, ls="--", label="calibrated (flat)")
        ax.set_xlabel("PIT")
        ax.set_ylabel("density")

    _per_horizon_figure(s, "PIT histogram", path, draw)


def plot_crps_by_hour(s: EvaluationSummary, path: Path) -> None:
    """Mean CRPS (bp) by UTC hour of the decision time, per horizon."""

    def draw(ax: plt.Axes, h: int) -> None:
        for name in s.figure_rows(h):
            values = np.array(
                [np.nan if v is None else v for v in s.get(name, h).crps_by_hour], dtype=np.float64
            )
            ax.plot(np.arange(24), values * 1e4, marker=".", label=_plain_label(s, name, h))
        ax.set_xlabel("hour of day (UTC)")
        ax.set_ylabel("CRPS (bp)")
        ax.set_xticks(range(0, 24, 3))

    _per_horizon_figure(s, "CRPS by hour of day", path, draw)


def _break_at_gaps(x: pd.DatetimeIndex, *series: np.ndarray) -> tuple[np.ndarray, ...]:
    """Insert a NaN point inside each gap longer than 3 typical steps so lines do not bridge it."""
    t = x.tz_convert("UTC").tz_localize(None).to_numpy()
    if t.size < 3:
        return (t, *series)
    step = np.median(np.diff(t))
    cut = np.flatnonzero(np.diff(t) > 3 * step) + 1
    t_out = np.insert(t, cut, t[cut - 1] + step)
    return (t_out, *(np.insert(np.asarray(v, dtype=np.float64), cut, np.nan) for v in series))


def plot_fan_chart(fan: FanChartData, label: str, asset: str, path: Path) -> None:
    """Central-interval bands of the price at t + h with the realised close."""
    fig, ax = plt.subplots(figsize=(11, 4.5), layout="constrained")
    levels = sorted(fan.bands, reverse=True)
    flat = [a for level in levels for a in fan.bands[level]]
    x, median, actual, *bounds = _break_at_gaps(fan.target_times, fan.median, fan.actual, *flat)
    for i, level in enumerate(levels):
        lo, hi = bounds[2 * i], bounds[2 * i + 1]
        ax.fill_between(x, lo, hi, alpha=0.25, step="mid", label=f"{level:.0%} interval")
    ax.plot(x, median, lw=0.8, label="median")
    ax.plot(x, actual, color="black", marker=".", ms=2, ls="none", label="realised")
    times = fan.target_times.tz_convert("UTC")
    ax.set_title(
        f"{asset}: {label}, {fan.horizon} min ahead, sample week "
        f"{times[0]:%a %Y-%m-%d} to {times[-1]:%a %Y-%m-%d} (UTC)"
    )
    ax.set_xlabel("target time (UTC)")
    ax.set_ylabel("price")
    ax.legend(fontsize=8, loc="upper left")
    fig.autofmt_xdate()
    _save(fig, path)


def write_report(
    out_dir: str | Path, summary: EvaluationSummary, fan: FanChartData | None = None
) -> ReportFiles:
    """Write report.md, metrics.json and the PNGs into ``out_dir`` (created if needed).

    Args:
        out_dir: destination folder.
        summary: the scored evaluation (see ``summarize_forecasts``).
        fan: optional fan-chart data for a sample week (see ``fan_chart_data``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(
        report=out / "report.md",
        metrics=out / "metrics.json",
        reliability=out / "reliability.png",
        pit_histogram=out / "pit_histogram.png",
        crps_by_hour=out / "crps_by_hour.png",
        fan_chart=out / "fan_chart.png" if fan is not None else None,
    )
    plot_reliability(summary, files.reliability)
    plot_pit(summary, files.pit_histogram)
    plot_crps_by_hour(summary, files.crps_by_hour)
    if fan is not None and files.fan_chart is not None:
        plot_fan_chart(
            fan, summary.labels.get(fan.forecaster, fan.forecaster), summary.asset, files.fan_chart
        )
    atomic_write_text(
        files.metrics, json.dumps(summary.to_dict(), indent=2, allow_nan=False) + "\n"
    )
    atomic_write_text(files.report, render_markdown(summary, fan is not None))
    return files


def note_export(report: Path, export: Path, rows: int) -> None:
    """Append to ``report`` a section naming the per-forecast export file and its columns."""
    text = report.read_text(encoding="utf-8").rstrip("\n")
    text += (
        "\n\n## Exported forecasts\n\n"
        f"Every scored forecast ({rows:,} rows: decision time × horizon × forecaster) is in "
        f"`{export}`: realised log return (and its price change and pips), mean, std, the "
        "quantiles at the configured levels, PIT and CRPS, all in log-return units "
        "(×1e4 = bp). Read it with `pandas.read_parquet` or `pandas.read_csv`.\n"
    )
    atomic_write_text(report, text)
