"""The exponential moving average of the weights (``training.ema_decay``): the update in closed
form, and in training: validation, early stopping and checkpoints see the average, the optimiser
trains the raw weights, which checkpoints carry for the resume (the resume itself:
``test_training.test_sigkill_then_resume_equals_uninterrupted``, run with the EMA on)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from forex_diffusion.models.checkpoint import load_checkpoint
from forex_diffusion.training.data_module import SSSDDataModule
from forex_diffusion.training.ema import ema_decay_at, ema_update_, state_copy, weights_swapped
from forex_diffusion.training.lightning_module import SSSDLightningModule
from forex_diffusion.training.train_sssd import SSSDTrainer
from training_utils import tiny_config, two_month_store, val_loss


def test_decay_schedule_forgets_the_start_then_holds() -> None:
    assert ema_decay_at(0.998, 0) == pytest.approx(0.1)
    assert ema_decay_at(0.998, 1) == pytest.approx(2 / 11)
    assert ema_decay_at(0.998, 10_000) == 0.998
    assert ema_decay_at(0.9, 80) == 0.9  # (81 / 90) = 0.9: the cap takes over from there


def test_update_matches_the_closed_form() -> None:
    """Weights held at w from a start e0: e_n = w + (e0 − w) · Π d_i; integers are copied."""
    model = torch.nn.Linear(3, 2)
    model.register_buffer("count", torch.tensor(0))
    shadow = state_copy(model)
    e0 = {k: v.clone() for k, v in shadow.items()}
    with torch.no_grad():
        model.weight.fill_(2.0)
        model.bias.fill_(-1.0)
        model.count.fill_(7)
    decays = [ema_decay_at(0.95, n) for n in (0, 1, 2, 500, 501, 502, 503)]
    for d in decays:
        ema_update_(shadow, model.state_dict(), d)
    keep = math.prod(decays)
    assert 1e-3 < keep < 1e-2  # the start still weighs: a swapped weight would show
    for key in ("weight", "bias"):
        w = model.state_dict()[key]
        torch.testing.assert_close(shadow[key], w + (e0[key] - w) * keep)
    assert int(shadow["count"]) == 7
    # one step is a lerp towards the weights by 1 − d
    fresh = {k: torch.zeros_like(v) for k, v in shadow.items()}
    ema_update_(fresh, model.state_dict(), 0.25)
    torch.testing.assert_close(fresh["weight"], 0.75 * model.weight.detach())


def test_weights_swapped_restores_the_model() -> None:
    model = torch.nn.Linear(2, 1)
    own = {k: v.clone() for k, v in model.state_dict().items()}
    other = {k: torch.full_like(v, 3.0) for k, v in own.items()}
    with weights_swapped(model, other):
        assert float(model.weight.sum()) == pytest.approx(6.0)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, own[k])


@pytest.mark.slow
def test_training_validates_and_saves_the_average(fx_dir: Path, tmp_path: Path) -> None:
    data_dir = two_month_store(fx_dir, tmp_path)
    cfg = tiny_config(tmp_path, "training.epochs=2", "training.ema_decay=0.9")
    dm = SSSDDataModule(data_path=data_dir, config=cfg)
    dm.setup("fit")
    torch.manual_seed(cfg.seed)
    result = SSSDTrainer(cfg).train(dm)
    assert result.status == "completed" and result.final_checkpoint is not None
    raw_file = torch.load(result.final_checkpoint, map_location="cpu", weights_only=True)
    ema, raw = raw_file["state_dict"], raw_file["ema"]["raw_state_dict"]
    assert raw_file["ema"]["decay"] == 0.9
    assert raw_file["ema"]["updates"] == raw_file["global_step"] > 0  # one per optimiser step
    assert any(not torch.equal(ema[k], raw[k]) for k in ema)
    # what inference loads is the average
    loaded = load_checkpoint(result.final_checkpoint)
    for k, v in loaded.model.state_dict().items():
        torch.testing.assert_close(v, ema[k], rtol=0, atol=0)
    # the logged validation loss of the last epoch is the average's, not the raw weights'
    module = SSSDLightningModule(cfg, dm.input_dims)
    module.model.load_state_dict(ema)
    with_ema = val_loss(module, dm)
    module.model.load_state_dict(raw)
    with_raw = val_loss(module, dm)
    assert with_ema != pytest.approx(with_raw, rel=1e-6)
    assert result.metrics["val_loss"] == pytest.approx(with_ema, rel=1e-5)
