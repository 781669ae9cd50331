"""Mirror an evaluation into MLflow, where a shop already tracks its runs (optional).

When tracking is on (``training.mlflow_uri`` or ``MLFLOW_TRACKING_URI``), the evaluation's
first table (with the verdicts) is logged as ``evaluation/<start>_<end>/first_table.md``, the
whole report and metrics.json beside it, and the model's CRPS, skill and 90 % coverage per
horizon as metrics: on the model's latest training run in the ``forex_diffusion`` experiment
(tags asset and model_name), or on a run of its own when the model was trained without MLflow.
The registry stays the source of truth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forex_diffusion.config.sssd_config import SSSDConfig
from forex_diffusion.evaluation.report import ReportFiles, first_table_text
from forex_diffusion.evaluation.summary import EvaluationSummary
from forex_diffusion.training.mlflow_tracking import EXPERIMENT, tracking_uri


def log_evaluation(
    config: SSSDConfig, summary: EvaluationSummary, files: ReportFiles
) -> str | None:
    """Log the evaluation to MLflow; returns the run id, or None when tracking is off or no
    model was evaluated."""
    uri = tracking_uri(config)
    if uri is None or summary.model_name is None:
        return None
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    run_id = _training_run(client, summary.asset, summary.model_name)
    if run_id is None:
        exp = client.get_experiment_by_name(EXPERIMENT)
        exp_id = exp.experiment_id if exp else client.create_experiment(EXPERIMENT)
        run = client.create_run(
            exp_id,
            run_name=f"{summary.asset}/{summary.model_name}/evaluation",
            tags={"asset": summary.asset, "model_name": summary.model_name},
        )
        run_id = run.info.run_id
    folder = f"evaluation/{summary.start}_{summary.end}".replace(" ", "T").replace(":", "")
    client.log_text(run_id, first_table_text(summary), f"{folder}/first_table.md")
    for path in (files.report, files.metrics):
        if Path(path).is_file():
            client.log_artifact(run_id, str(path), artifact_path=folder)
    for h in summary.horizons:
        m = summary.get(summary.model_name, h)
        for key, value in (
            ("crps_bp", m.crps * 1e4),
            ("skill_vs_best", m.skill_vs_best),
            ("coverage90", m.coverage.get("0.9")),
        ):
            if value is not None and value == value:  # skip NaN
                client.log_metric(run_id, f"eval_{key}_{h}min", float(value))
    return run_id


def _training_run(client: Any, asset: str, model_name: str) -> str | None:
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        return None
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.asset = '{asset}' and tags.model_name = '{model_name}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None
