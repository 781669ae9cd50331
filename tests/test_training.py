"""SSSDTrainer end to end on real EURUSD: learning, files, registry rows, resume, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from forex_diffusion.cli.main import app
from forex_diffusion.errors import CheckpointError, DataError, NotFoundError
from forex_diffusion.models.checkpoint import load_checkpoint
from forex_diffusion.registry import open_registry
from forex_diffusion.training.data_module import SSSDDataModule
from forex_diffusion.training.lightning_module import SSSDLightningModule
from forex_diffusion.training.schedule import warmup_cosine_factor
from forex_diffusion.training.train_sssd import SSSDTrainer, repeat_override_flags
from training_utils import tiny_config, two_month_store, val_loss


def test_warmup_cosine_schedule() -> None:
    assert warmup_cosine_factor(0, 10, 100, 0.1) == pytest.approx(0.1)
    assert warmup_cosine_factor(9, 10, 100, 0.1) == pytest.approx(1.0)
    assert warmup_cosine_factor(10, 10, 100, 0.1) == pytest.approx(1.0)
    assert warmup_cosine_factor(55, 10, 100, 0.1) == pytest.approx(0.1 + 0.9 * 0.5)
    assert warmup_cosine_factor(100, 10, 100, 0.1) == pytest.approx(0.1)
    assert warmup_cosine_factor(500, 10, 100, 0.1) == pytest.approx(0.1)


def test_smoke_training_learns_and_records(fx_dir: Path, tmp_path: Path) -> None:
    data_dir = two_month_store(fx_dir, tmp_path)
    cfg = tiny_config(tmp_path)
    dm = SSSDDataModule(data_path=data_dir, config=cfg)
    dm.setup("fit")
    torch.manual_seed(cfg.seed)
    before_module = SSSDLightningModule(cfg, dm.input_dims)
    before = val_loss(before_module, dm)

    started = time.monotonic()
    result = SSSDTrainer(cfg).train(dm)
    assert time.monotonic() - started < 120
    assert result.status == "completed"
    assert result.epochs_completed == 2

    loaded = load_checkpoint(result.best_checkpoint)  # weights-only load of a training checkpoint
    trained = SSSDLightningModule(cfg, dm.input_dims)
    trained.model.load_state_dict(loaded.model.state_dict())
    after = val_loss(trained, dm)
    assert after < before, f"validation loss did not improve: {before:.4f} -> {after:.4f}"
    assert loaded.feature_names == dm.feature_names
    assert loaded.standardizer == dm.standardizer.to_dict()
    assert loaded.config == cfg

    ckpt_dir = tmp_path / "checkpoints" / "EURUSD" / cfg.model.name
    assert {"best.ckpt", "last.ckpt", "final.ckpt"} <= {p.name for p in ckpt_dir.iterdir()}
    assert any((tmp_path / "logs").rglob("events.out.tfevents.*")), "no TensorBoard events"
    assert any((tmp_path / "logs").rglob("*.log")), "no per-run log file"
    with open_registry(cfg) as reg:
        runs = reg.list_runs(asset="EURUSD")
        assert [r.status for r in runs] == ["completed"]
        assert runs[0].epochs == 2 and runs[0].final_val_loss is not None
        best = reg.best_checkpoint("EURUSD", cfg.model.name)
        assert Path(best.path) == (ckpt_dir / "best.ckpt").resolve()
        assert best.val_loss == pytest.approx(result.best_val_loss)
        assert "val_coverage90" in best.val_metrics and "val_crps" in best.val_metrics


def test_periodic_checkpoints_are_written_and_every_file_is_registered(
    fx_dir: Path, tmp_path: Path
) -> None:
    data_dir = two_month_store(fx_dir, tmp_path)
    cfg = tiny_config(tmp_path, "training.checkpoint={every_n_epochs: 1, keep_best_only: false}")
    result = SSSDTrainer(cfg).train(SSSDDataModule(data_path=data_dir, config=cfg))
    assert result.status == "completed"
    ckpt_dir = tmp_path / "checkpoints" / "EURUSD" / cfg.model.name
    names = {"best.ckpt", "last.ckpt", "final.ckpt", "epoch=000.ckpt", "epoch=001.ckpt"}
    assert {p.name for p in ckpt_dir.iterdir()} == names
    with open_registry(cfg) as reg:
        rows = {Path(r.path).name: r for r in reg.list_checkpoints("EURUSD", cfg.model.name)}
    assert set(rows) == names
    assert [n for n, r in rows.items() if r.is_best] == ["best.ckpt"]
    assert rows["epoch=001.ckpt"].epoch == 1 and rows["final.ckpt"].epoch == 2
    for name, row in rows.items():
        assert row.size_bytes == (ckpt_dir / name).stat().st_size, name
    periodic = load_checkpoint(ckpt_dir / "epoch=001.ckpt")
    final = load_checkpoint(ckpt_dir / "final.ckpt")
    for key, tensor in final.model.state_dict().items():
        assert torch.equal(tensor, periodic.model.state_dict()[key]), key


def _start_of(stdout: str) -> dict:
    line = next(x for x in stdout.splitlines() if x.startswith("START "))
    return json.loads(line[len("START ") :])


def _train_cmd(root: Path, extra: list[str], resume: bool = False) -> list[str]:
    code = (
        "import sys; sys.path.insert(0, 'tests');"
        "from training_utils import tiny_config;"
        "from forex_diffusion.training.train_sssd import train_from_config;"
        f"cfg = tiny_config(__import__('pathlib').Path({str(root)!r}), *{extra!r});"
        f"r = train_from_config(cfg, resume={resume});"
        "print('STATUS', r.status);"
        "import json; print('START', json.dumps({**r.start, 'resumed_from': str(r.resumed_from)}))"
    )
    return [sys.executable, "-c", code]


@pytest.mark.slow
@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_sigkill_then_resume_equals_uninterrupted(
    fx_dir: Path, tmp_path: Path, ema_decay: float
) -> None:
    """With the EMA of the weights on, both the average and the raw weights resume exactly."""
    extra = ["training.epochs=3", f"training.ema_decay={ema_decay}"]
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TORCH_NUM_THREADS": "1"}
    for name in ("a", "b"):
        two_month_store(fx_dir, tmp_path / name)
    # a: uninterrupted
    done = subprocess.run(
        _train_cmd(tmp_path / "a", extra), cwd=repo, env=env, capture_output=True, text=True
    )
    assert "STATUS completed" in done.stdout, done.stderr[-2000:]
    # b: killed with SIGKILL after the first epoch's checkpoint, then resumed
    proc = subprocess.Popen(
        _train_cmd(tmp_path / "b", extra),
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    last = tmp_path / "b" / "checkpoints" / "EURUSD" / "sssd_cpu_small" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed"
    time.sleep(0.3)  # into the next epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # what the resumed run must start from (it overwrites last.ckpt as it goes)
    saved = torch.load(last, map_location="cpu", weights_only=True)
    cfg_b = tiny_config(tmp_path / "b", *extra)
    with open_registry(cfg_b) as reg:
        assert [r.status for r in reg.list_runs(asset="EURUSD")] == ["running"]
    resumed = subprocess.run(
        _train_cmd(tmp_path / "b", extra, resume=True),
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
    )
    assert "STATUS completed" in resumed.stdout, resumed.stderr[-2000:]
    with open_registry(cfg_b) as reg:
        runs = reg.list_runs(asset="EURUSD")
    assert sorted(r.status for r in runs) == ["completed", "interrupted"]
    assert [r.epochs for r in runs if r.status == "completed"] == [3]

    # the resumed run started where last.ckpt left off, with its optimizer and LR schedule ...
    start = _start_of(resumed.stdout)
    full = _start_of(done.stdout)
    assert start["resumed_from"] == str(last)
    assert saved["global_step"] > 0 and start["global_step"] == saved["global_step"]
    assert start["epoch"] == saved["epoch"] + 1
    adam_steps = [int(st["step"]) for st in saved["optimizer_states"][0]["state"].values()]
    assert start["optimizer_step"] == max(adam_steps) > 0
    assert start["scheduler_last_epoch"] == saved["lr_schedulers"][0]["last_epoch"] > 0
    # ... and did less work than the uninterrupted run, which started from nothing
    assert full["epoch"] == 0 and full["global_step"] == 0 and full["resumed_from"] == "None"
    assert 0 < start["batches_run"] < full["batches_run"]

    final_a = load_checkpoint(
        tmp_path / "a" / "checkpoints" / "EURUSD" / "sssd_cpu_small" / "final.ckpt"
    )
    final_b = load_checkpoint(
        tmp_path / "b" / "checkpoints" / "EURUSD" / "sssd_cpu_small" / "final.ckpt"
    )
    sa, sb = final_a.model.state_dict(), final_b.model.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(
            sa[key], sb[key], rtol=0, atol=0, msg=f"{key} differs after resume"
        )
    assert ("ema" in final_a.extra) == ("ema" in final_b.extra) == (ema_decay > 0)
    if ema_decay > 0:  # the raw weights the optimiser trained, and the number of updates
        ea, eb = final_a.extra["ema"], final_b.extra["ema"]
        assert ea["updates"] == eb["updates"] == final_a.extra["global_step"] > 0
        raw_a, raw_b = ea["raw_state_dict"], eb["raw_state_dict"]
        for key, value in raw_a.items():
            torch.testing.assert_close(
                value, raw_b[key], rtol=0, atol=0, msg=f"raw {key} differs after resume"
            )
        assert any(not torch.equal(raw_a[k], sa[k]) for k in sa), "average equals raw weights"


@pytest.mark.slow
def test_sigterm_marks_the_run_interrupted(fx_dir: Path, tmp_path: Path) -> None:
    """Lightning turns SIGTERM into an exception at the next batch; the run is interrupted."""
    extra = ["training.epochs=20"]
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TORCH_NUM_THREADS": "1"}
    two_month_store(fx_dir, tmp_path)
    proc = subprocess.Popen(
        _train_cmd(tmp_path, extra),
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    last = tmp_path / "checkpoints" / "EURUSD" / "sssd_cpu_small" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be stopped"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert "STATUS interrupted" in out, err[-2000:]
    with open_registry(tiny_config(tmp_path, *extra)) as reg:
        runs = reg.list_runs(asset="EURUSD")
        assert [r.status for r in runs] == ["interrupted"]
        assert "SIGTERM" in (runs[0].error_message or "")
    assert not (last.parent / "final.ckpt").exists()


def test_module_entry_point_is_the_train_command(tmp_path: Path) -> None:
    """``python -m forex_diffusion.training.train_sssd`` runs ``forex-diffusion train``; several
    values after one ``--override`` (SPEC §2) are each passed on."""
    repo = Path(__file__).resolve().parents[1]
    cmd = [
        sys.executable,
        "-m",
        "forex_diffusion.training.train_sssd",
        "--config",
        str(repo / "configs" / "sssd" / "default_config.yaml"),
        "--override",
        "training.epochs=1",
        "training.epoch=3",
    ]
    res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "training.epoch: unknown key; did you mean 'training.epochs'?" in res.stderr
    assert repeat_override_flags(["--resume", "-o", "a=1", "b=2", "--override", "c=3"]) == [
        "--resume", "-o", "a=1", "--override", "b=2", "--override", "c=3"
    ]  # fmt: skip


def test_asset_without_data_is_named(fx_dir: Path, tmp_path: Path) -> None:
    data_dir = two_month_store(fx_dir, tmp_path)
    cfg = tiny_config(tmp_path, "asset.symbol=GBPUSD")
    with pytest.raises(NotFoundError, match="GBPUSD"):
        SSSDTrainer(cfg).train(SSSDDataModule(data_path=data_dir, config=cfg))


def test_range_shorter_than_lookbacks_is_named(fx_dir: Path, tmp_path: Path) -> None:
    data_dir = two_month_store(fx_dir, tmp_path)
    cfg = tiny_config(tmp_path, "data.lookbacks={5m: 48, 15m: 16, 1h: 8, 4h: 400}")
    with pytest.raises(DataError, match=r"4h.*\d+") as info:
        SSSDTrainer(cfg).train(SSSDDataModule(data_path=data_dir, config=cfg))
    assert "need" in str(info.value).lower() or "needed" in str(info.value).lower()


def test_unwritable_checkpoint_marks_run_failed(fx_dir: Path, tmp_path: Path) -> None:
    data_dir = two_month_store(fx_dir, tmp_path)
    cfg = tiny_config(tmp_path, "training.epochs=1")
    blocked = tmp_path / "checkpoints" / "EURUSD" / cfg.model.name / "best.ckpt"
    blocked.mkdir(parents=True)  # a folder where the checkpoint file must go
    (blocked / "keep").write_text("x")
    with pytest.raises(CheckpointError, match="cannot write checkpoint"):
        SSSDTrainer(cfg).train(SSSDDataModule(data_path=data_dir, config=cfg))
    with open_registry(cfg) as reg:
        runs = reg.list_runs(asset="EURUSD")
        assert [r.status for r in runs] == ["failed"]
        assert "cannot write checkpoint" in (runs[0].error_message or "")


def test_train_cli_config_typo_is_named(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["train", "--asset", "EURUSD", "-o", "training.epoch=3"])
    assert res.exit_code == 2
    assert "training.epoch: unknown key; did you mean 'training.epochs'?" in res.output


def test_validation_forecast_rows_are_spread_through_each_batch() -> None:
    """val_coverage90 is scored on rows spread over the validation range, not its first rows."""
    from forex_diffusion.training.lightning_module import _concat, _spread_rows

    feats = {"5m": torch.arange(10.0)[:, None, None].expand(10, 3, 2)}
    batch = (feats, torch.arange(10.0)[:, None, None].expand(10, 4, 1), torch.zeros(10, 4))
    picked = _spread_rows(batch, 4)
    assert picked[1][:, 0, 0].tolist() == [0.0, 3.0, 6.0, 9.0]
    assert picked[0]["5m"][:, 0, 0].tolist() == [0.0, 3.0, 6.0, 9.0]
    assert _spread_rows(batch, 50)[1].shape[0] == 10
    both = _concat([picked, _spread_rows(batch, 2)])
    assert both[1][:, 0, 0].tolist() == [0.0, 3.0, 6.0, 9.0, 0.0, 9.0]
    assert both[0]["5m"].shape == (6, 3, 2) and both[2].shape == (6, 4)
