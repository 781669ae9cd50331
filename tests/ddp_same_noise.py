"""Script run by test_ddp.py: train one epoch with a diffusion noise stream that does not
depend on how the batch is split over processes.

``python tests/ddp_same_noise.py ROOT DATA_DIR BATCH DEVICES STRATEGY EPOCHS STOP_AFTER RESUME``
(STOP_AFTER > 0 ends the fit after that many epochs, as an interruption at an epoch boundary
would; RESUME 1 continues from last.ckpt). Lightning's DDP launcher starts this same command
again for rank 1.

The real module draws each process's timesteps and noise from that process's generator, so two
ranks with half-batches draw different noise from one process with the whole batch. Here every
process draws the noise of the whole global batch from a generator seeded by (epoch, batch) and
takes its own rows: rank r's half-batch is rows r, r + W, ... of the global batch (the sampler
interleaves the shards that way), so both runs see the same samples with the same noise.
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.utilities.rank_zero import _get_rank
from lightning.pytorch.callbacks import Callback

from forex_diffusion.config.sssd_config import DEFAULT_CONFIG_PATH, load_sssd_config
from forex_diffusion.registry import Registry
from forex_diffusion.training.data_module import SSSDDataModule
from forex_diffusion.training.lightning_module import Batch, SSSDLightningModule
from forex_diffusion.training.train_sssd import SSSDTrainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_utils import scale_overrides


class SameNoiseModule(SSSDLightningModule):
    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        features, targets, horizon_idx = batch
        world, rank = self.trainer.world_size, self.trainer.global_rank
        gen = torch.Generator().manual_seed(10_007 * self.current_epoch + batch_idx)
        t, noise = self.model.draw_noise(targets.shape[0] * world, generator=gen)
        out = self.model(
            features, targets, horizon_idx, timesteps=t[rank::world], noise=noise[rank::world]
        )
        self._log_losses("train", out.loss, out.per_horizon, targets.shape[0])
        return out.loss


class StopAfter(Callback):
    """Ends the fit after ``epochs`` epochs (every rank agrees through Lightning)."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.epochs and trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True


class SameNoiseTrainer(SSSDTrainer):
    def _lightning_module(self, data_module: SSSDDataModule) -> SSSDLightningModule:
        data_module.setup("fit")
        return SameNoiseModule(
            self.config,
            data_module.input_dims,
            feature_names=data_module.feature_names,
            standardizer=data_module.standardizer.to_dict(),
        )


def main() -> None:
    root, data_dir, batch, devices, strategy, epochs, stop_after, resume = sys.argv[1:9]
    torch.set_num_threads(1)
    config = load_sssd_config(
        DEFAULT_CONFIG_PATH,
        overrides=scale_overrides(
            Path(root),
            f"paths.data_dir={data_dir}",
            "asset.symbol=AAAUSD",
            "asset.pip_size=0.0001",
            f"training.epochs={epochs}",
            "training.warmup_steps=0",
            "training.max_train_batches_per_epoch=3",  # whole batches only
            "model.encoder.dropout=0.0",
            f"training.batch_size={batch}",
            f"training.devices={devices}",
            f"training.strategy={strategy}",
        ),
        preset="cpu_small",
    )
    with Registry(f"sqlite:///{Path(root) / 'registry.db'}") as registry:
        trainer = SameNoiseTrainer(
            config, registry=registry, accelerator="cpu", callbacks=[StopAfter(int(stop_after))]
        )
        result = trainer.train(
            SSSDDataModule(data_path=data_dir, config=config), resume=resume == "1"
        )
    if not _get_rank():  # rank 1 shares this stdout
        print(result.to_json())


if __name__ == "__main__":
    main()
