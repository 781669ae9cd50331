"""``SSSDTrainer``: turns an ``SSSDDataModule`` into a trained, registered model.

Usage::

    python -m forex_diffusion.training.train_sssd --config configs/sssd/default_config.yaml \
        --asset-config configs/sssd/eurusd_config.yaml --override training.epochs=100 training.batch_size=64
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor
from lightning.pytorch.loggers import TensorBoardLogger
from loguru import logger

from forex_diffusion.config.sssd_config import DEFAULT_CONFIG_PATH, SSSDConfig, load_sssd_config
from forex_diffusion.data.sssd_dataset import SSSDDataModule
from forex_diffusion.errors import CheckpointError, ForexDiffusionError
from forex_diffusion.registry.repository import Registry, open_registry
from forex_diffusion.training.callbacks import (
    CudaCacheClear,
    EpochSeed,
    SSSDCheckpoint,
    StepProgress,
    float_metrics,
)
from forex_diffusion.training.lightning_module import SSSDLightningModule


@dataclass
class TrainingResult:
    """What a finished (or stopped) training run produced."""

    status: str
    run_id: int
    model_id: int
    checkpoint_dir: Path
    best_checkpoint: Path | None
    final_checkpoint: Path | None
    best_val_loss: float | None
    epochs_completed: int
    duration_s: float
    metrics: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        """Indented JSON of every field (paths as strings): what the train commands print."""
        return json.dumps(
            {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}, indent=2
        )


def resolve_precision(setting: str, accelerator: str) -> str:
    """``auto`` → bf16-mixed on bf16-capable GPUs, 16-mixed on older GPUs, 32 on CPU.

    SPEC §5 names bf16 on CPU; measured on the 2-core CI machine (no AVX512-BF16), a cpu_small
    training step takes 1754 ms under bf16 autocast against 364 ms in fp32 (benchmarks/
    bench_train.py), so ``auto`` keeps fp32 on CPU; ``bf16-mixed`` can still be asked for.
    """
    if setting != "auto":
        return setting
    if accelerator == "gpu":
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32"


class _Interrupted(Exception):
    pass


@contextmanager
def _signals_raise_interrupt() -> Iterator[None]:
    """SIGTERM (and SIGINT) raise inside the training loop so the run is marked interrupted."""
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Interrupted(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGINT):
        with suppress(ValueError):  # not in the main thread: leave signals alone
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


class SSSDTrainer:
    """Lightning-based trainer of one SSSD model per asset (SPEC §5)."""

    def __init__(
        self, config: SSSDConfig, registry: Registry | None = None, accelerator: str = "auto"
    ) -> None:
        self.config = config
        self.registry = registry or open_registry(config)
        if accelerator == "auto":
            accelerator = "gpu" if torch.cuda.is_available() else "cpu"
        self.accelerator = accelerator

    @property
    def checkpoint_dir(self) -> Path:
        return (
            Path(self.config.paths.checkpoint_dir)
            / self.config.asset.symbol
            / self.config.model.name
        )

    def train(self, data_module: SSSDDataModule, resume: bool = False) -> TrainingResult:
        """Fit the model; checkpoints, TensorBoard logs and registry rows are written as it goes.

        Args:
            data_module: an ``SSSDDataModule`` built from the same config.
            resume: continue from ``last.ckpt`` of this asset/model when it exists.
        """
        cfg = self.config
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        data_module.setup("fit")
        feature_dims = {tf: len(names) for tf, names in data_module.feature_names.items()}
        module = SSSDLightningModule(cfg, feature_dims)

        record = self.registry.register_from_config(cfg)
        ckpt_dir = self.checkpoint_dir
        try:
            ckpt_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CheckpointError(
                f"cannot create checkpoint folder {ckpt_dir}: {exc.strerror or exc}"
            ) from exc
        run_name = time.strftime("%Y%m%d-%H%M%S")
        log_dir = Path(cfg.paths.log_dir) / cfg.asset.symbol / cfg.model.name
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{run_name}.log"
        sink = logger.add(log_path, level="INFO")
        run = self.registry.start_run(
            model_id=record.id,
            run_name=run_name,
            data_range=cfg.data.splits.model_dump(mode="json"),
            hyperparameters=cfg.training.model_dump(mode="json"),
            device=self.accelerator,
            log_path=str(log_path),
        )
        ckpt_cb = SSSDCheckpoint(
            directory=ckpt_dir,
            registry=self.registry,
            model_id=record.id,
            extra={
                "config": cfg,
                "feature_names": data_module.feature_names,
                "standardizer": data_module.standardizer.to_dict(),
            },
            every_n_epochs=cfg.training.checkpoint.every_n_epochs,
            keep_best_only=cfg.training.checkpoint.keep_best_only,
        )
        early = EarlyStopping(
            monitor="val_loss",
            patience=cfg.training.early_stopping.patience,
            min_delta=cfg.training.early_stopping.min_delta,
            mode="min",
        )
        precision = resolve_precision(cfg.training.precision, self.accelerator)
        trainer = L.Trainer(
            accelerator=self.accelerator,
            devices=1,
            max_epochs=cfg.training.epochs,
            precision=precision,  # type: ignore[arg-type]
            gradient_clip_val=cfg.training.gradient_clip,
            accumulate_grad_batches=cfg.training.accumulate_grad_batches,
            limit_train_batches=cfg.training.max_train_batches_per_epoch or 1.0,
            callbacks=[
                EpochSeed(cfg.seed),
                ckpt_cb,
                early,
                CudaCacheClear(cfg.training.cuda_empty_cache_every),
                LearningRateMonitor(logging_interval="step"),
                StepProgress(),
            ],
            logger=TensorBoardLogger(save_dir=str(log_dir), name="tensorboard", version=run_name),
            enable_checkpointing=False,
            enable_progress_bar=sys.stderr.isatty(),
            enable_model_summary=False,
            num_sanity_val_steps=0,
            deterministic=False,
            log_every_n_steps=10,
        )
        last = ckpt_dir / "last.ckpt"
        ckpt_path = str(last) if resume and last.is_file() else None
        if resume and ckpt_path is None:
            logger.warning(f"--resume: no {last} yet; starting from scratch")
        logger.info(
            f"training {cfg.asset.symbol}/{cfg.model.name}: precision={precision}, "
            f"train samples={len(data_module.train_dataset)}, val samples={len(data_module.val_dataset)}"
        )
        started = time.monotonic()
        status = "completed"
        try:
            with _signals_raise_interrupt():
                trainer.fit(module, datamodule=data_module, ckpt_path=ckpt_path, weights_only=True)
                final = ckpt_cb.save_final(trainer)
        except (_Interrupted, KeyboardInterrupt) as exc:
            status = "interrupted"
            self.registry.interrupt_run(run.id)
            logger.warning(
                f"training interrupted ({exc or 'SIGINT'}); resume with --resume from {last}"
            )
            final = None
        except Exception as exc:
            status = "failed"
            self.registry.fail_run(run.id, f"{type(exc).__name__}: {exc}")
            logger.error(f"training failed: {exc}")
            logger.remove(sink)
            raise
        duration = time.monotonic() - started
        metrics = float_metrics(trainer.callback_metrics)
        if status == "completed":
            self.registry.complete_run(
                run.id,
                best_epoch=ckpt_cb.best_epoch,
                epochs=int(trainer.current_epoch),
                final_train_loss=metrics.get("train_loss"),
                final_val_loss=metrics.get("val_loss"),
            )
        logger.info(f"training {status} in {duration:.1f}s; best val_loss {ckpt_cb.best_val}")
        logger.remove(sink)
        best = ckpt_dir / "best.ckpt"
        return TrainingResult(
            status=status,
            run_id=run.id,
            model_id=record.id,
            checkpoint_dir=ckpt_dir,
            best_checkpoint=best if best.is_file() else None,
            final_checkpoint=final,
            best_val_loss=ckpt_cb.best_val,
            epochs_completed=int(trainer.current_epoch),
            duration_s=duration,
            metrics=metrics,
        )


def train_from_config(
    config: SSSDConfig, resume: bool = False, data_dir: str | Path | None = None
) -> TrainingResult:
    """Build the data module from the store and train (the train command's body)."""
    from forex_diffusion.data.store import resolve_data_dir

    data_module = SSSDDataModule(data_path=resolve_data_dir(config, data_dir), config=config)
    return SSSDTrainer(config).train(data_module, resume=resume)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m forex_diffusion.training.train_sssd", description=__doc__
    )
    parser.add_argument("--config", default=str(DEFAULT_CONFIG_PATH))
    parser.add_argument("--asset-config", default=None)
    parser.add_argument(
        "--preset", default=None, help="preset layered over the defaults, e.g. cpu_small"
    )
    parser.add_argument(
        "--override", nargs="*", default=[], help="dotted overrides, e.g. training.epochs=100"
    )
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--resume", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        config = load_sssd_config(args.config, args.asset_config, args.override, preset=args.preset)
        result = train_from_config(config, resume=args.resume, data_dir=args.data_dir)
    except ForexDiffusionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.to_json())
    return 0 if result.status == "completed" else 1


if __name__ == "__main__":
    raise SystemExit(main())
