"""One model on two CPU processes (strategy=ddp, gloo): one epoch against a single-process
run with the same global batch.

The weights are not expected to be equal, and the test says why instead of pretending: each
process draws its diffusion timesteps and Gaussian noise from its own torch generator (seeded
by (seed, epoch, rank)), so the two DDP ranks draw different noise for their half-batches than
the single process draws for the whole batch. The data, the initial weights, the learning-rate
schedule and the gradient averaging are the same; the noise is not, and with it the
per-sample losses. What is checked: the run completes with one registry run and rank-0-only
checkpoints; the two ranks trained on disjoint halves of the single-process epoch (the sampler
test in test_scale_units.py); and the DDP weights moved from the initial weights by the same
order as the single-process run did, in the same direction on average.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from forex_diffusion.registry import Registry
from scale_utils import cli_overrides, scale_overrides, synthetic_store

pytestmark = pytest.mark.slow

SRC = Path(__file__).resolve().parents[1] / "src"
BATCH = 16  # per process under DDP; the single-process run takes 2 × BATCH


def _train(root: Path, data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    overrides = scale_overrides(
        root,
        f"paths.data_dir={data_dir}",
        "training.epochs=1",
        "training.warmup_steps=0",
        "model.encoder.dropout=0.0",
        *extra,
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    env.update(
        OMP_NUM_THREADS="1",
        TORCH_NUM_THREADS="1",
        FOREX_DIFFUSION_DB_URL=f"sqlite:///{root / 'registry.db'}",
    )
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [
        sys.executable,
        "-m",
        "forex_diffusion.cli.main",
        "train",
        "--asset",
        "AAAUSD",
        "--preset",
        "cpu_small",
        *cli_overrides(overrides),
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, cwd=root, timeout=900)


def _weights(root: Path) -> dict[str, torch.Tensor]:
    (final,) = (root / "checkpoints").rglob("final.ckpt")
    state = torch.load(final, map_location="cpu", weights_only=False)["state_dict"]
    return {k: v.float() for k, v in state.items() if v.is_floating_point()}


def _initial(root: Path) -> dict[str, torch.Tensor]:
    """The weights the run started from: the trainer seeds everything, then builds the model."""
    import json

    import lightning as L

    from forex_diffusion.config.sssd_config import config_from_dict
    from forex_diffusion.models.build import build_sssd_model

    (final,) = (root / "checkpoints").rglob("final.ckpt")
    ckpt = torch.load(final, map_location="cpu", weights_only=False)
    config = config_from_dict(json.loads(ckpt["config_json"]))
    L.seed_everything(config.seed, workers=True, verbose=False)
    dims = {tf: len(names) for tf, names in ckpt["feature_names"].items()}
    model = build_sssd_model(config, dims)
    return {k: v.float() for k, v in model.state_dict().items() if v.is_floating_point()}


def _flat(state: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([state[k].flatten() for k in sorted(state)])


def test_ddp_two_cpu_processes_against_one(tmp_path: Path) -> None:
    data_dir = synthetic_store(tmp_path, ["AAAUSD"])
    ddp_root, one_root = tmp_path / "ddp", tmp_path / "one"
    ddp = _train(
        ddp_root,
        data_dir,
        f"training.batch_size={BATCH}",
        "training.strategy=ddp",
        "training.devices=2",
    )
    assert ddp.returncode == 0, ddp.stderr[-4000:]
    one = _train(one_root, data_dir, f"training.batch_size={2 * BATCH}")
    assert one.returncode == 0, one.stderr[-4000:]

    # one run in the registry, written by rank 0; every checkpoint file once
    with Registry(f"sqlite:///{ddp_root / 'registry.db'}") as registry:
        (run,) = registry.list_runs(asset="AAAUSD")
        assert run.status == "completed" and run.epochs == 1
        paths = [c.path for c in registry.list_checkpoints("AAAUSD")]
        assert len(paths) == len(set(paths)) and all(Path(p).is_file() for p in paths)
    assert list((ddp_root / "logs").rglob("*.rank1.log")), "rank 1 logs to its own file"

    w_ddp, w_one = _flat(_weights(ddp_root)), _flat(_weights(one_root))
    w_init = _flat(_initial(one_root))
    step_ddp, step_one = w_ddp - w_init, w_one - w_init
    assert step_one.norm() > 0 and step_ddp.norm() > 0
    ratio = float(step_ddp.norm() / step_one.norm())
    cosine = float(torch.nn.functional.cosine_similarity(step_ddp, step_one, dim=0))
    print(f"DDP vs one process: |Δw| ratio {ratio:.3f}, cosine of the updates {cosine:.3f}")
    assert 0.5 < ratio < 2.0
    assert cosine > 0.5
