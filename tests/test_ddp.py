"""One model on two CPU processes (strategy=ddp, gloo) trains one epoch; its weights equal a
single-process run with the same global batch.

Equal only once the diffusion noise is the same: the real module draws each process's
timesteps and Gaussian noise from that process's own generator (seeded by seed, epoch and
rank), so two ranks with half-batches draw different noise than one process with the whole
batch, and with Adam's first steps (about lr × sign of the gradient) that alone makes the
updates of the two runs nearly uncorrelated. ``ddp_same_noise.py`` trains the real model,
data module, sampler, optimiser and trainer, but draws the noise of the whole global batch from
a (epoch, batch) generator in every process and lets each rank take its rows. Then the data,
the initial weights, the schedule and the averaged gradients are the same, and so are the
weights up to float rounding (the all-reduce sums in another order).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from forex_diffusion.registry import Registry
from scale_utils import synthetic_store

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
BATCH = 16  # per process under DDP; the single-process run takes 2 × BATCH


def _train(
    root: Path,
    data_dir: Path,
    batch: int,
    devices: int,
    strategy: str,
    epochs: int = 1,
    stop_after: int = 0,
    resume: bool = False,
) -> dict[str, object]:
    root.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(HERE), env.get("PYTHONPATH", "")])
    env.update(OMP_NUM_THREADS="1", TORCH_NUM_THREADS="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [
        sys.executable,
        str(HERE / "ddp_same_noise.py"),
        str(root),
        str(data_dir),
        str(batch),
        str(devices),
        strategy,
        str(epochs),
        str(stop_after),
        "1" if resume else "0",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=root, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    out = done.stdout
    return dict(json.loads(out[out.index("{") : out.rindex("}") + 1]))


def _weights(root: Path) -> dict[str, torch.Tensor]:
    (final,) = (root / "checkpoints").rglob("final.ckpt")
    state = torch.load(final, map_location="cpu", weights_only=False)["state_dict"]
    return {k: v.float() for k, v in state.items() if v.is_floating_point()}


def test_ddp_two_cpu_processes_equal_one(tmp_path: Path) -> None:
    data_dir = synthetic_store(tmp_path, ["AAAUSD"])
    ddp_root, one_root = tmp_path / "ddp", tmp_path / "one"
    ddp = _train(ddp_root, data_dir, BATCH, 2, "ddp")
    one = _train(one_root, data_dir, 2 * BATCH, 1, "auto")
    assert ddp["status"] == one["status"] == "completed"

    # one run in the registry, written by rank 0; every checkpoint file once
    with Registry(f"sqlite:///{ddp_root / 'registry.db'}") as registry:
        (run,) = registry.list_runs(asset="AAAUSD")
        assert run.status == "completed" and run.epochs == 1
        paths = [c.path for c in registry.list_checkpoints("AAAUSD")]
        assert paths and len(paths) == len(set(paths)) and all(Path(p).is_file() for p in paths)
    assert list((ddp_root / "logs").rglob("*.rank1.log")), "rank 1 logs to its own file"

    w_ddp, w_one = _weights(ddp_root), _weights(one_root)
    assert w_ddp.keys() == w_one.keys()
    worst = max(float((w_ddp[k] - w_one[k]).abs().max()) for k in w_ddp)
    print(f"largest weight difference DDP vs one process: {worst:.2e}")
    for key in w_ddp:
        torch.testing.assert_close(w_ddp[key], w_one[key], rtol=1e-4, atol=1e-5, msg=key)


def test_ddp_resume_equals_uninterrupted(tmp_path: Path) -> None:
    """Two epochs under DDP in one go, and one epoch, an end, then --resume for the second."""
    data_dir = synthetic_store(tmp_path, ["AAAUSD"])
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert _train(whole, data_dir, BATCH, 2, "ddp", epochs=2)["status"] == "completed"
    first = _train(parts, data_dir, BATCH, 2, "ddp", epochs=2, stop_after=1)
    assert first["epochs_completed"] == 1
    second = _train(parts, data_dir, BATCH, 2, "ddp", epochs=2, resume=True)
    assert second["status"] == "completed" and second["epochs_completed"] == 2
    assert str(second["resumed_from"]).endswith("last.ckpt")
    w_whole, w_parts = _weights(whole), _weights(parts)
    for key in w_whole:
        torch.testing.assert_close(w_parts[key], w_whole[key], rtol=1e-5, atol=1e-6, msg=key)
