"""Loaded inference services, one per (asset, model), each with the lock that serialises its
model calls (the batcher, the live state and direct predictions share a model)."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

from loguru import logger

from forex_diffusion.config.sssd_config import SSSDConfig
from forex_diffusion.inference.sssd_inference import (
    SSSDInferenceService,
    load_sssd_inference_service,
)
from forex_diffusion.registry.repository import Registry
from forex_diffusion.service.torch_thread import Offload


@dataclass
class Loaded:
    """A loaded service; ``lock`` guards its model (one model call at a time)."""

    service: SSSDInferenceService
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class ModelPool:
    """Loads each asset's model once (the registry's best checkpoint, or ``model_name``),
    through ``offload`` (the service's ``TorchThread``)."""

    def __init__(
        self,
        config: SSSDConfig,
        registry: Registry,
        offload: Offload,
        device: str | None = None,
        default_model: str | None = None,
        compile_samples: tuple[int | None, ...] = (),
    ) -> None:
        self.config = config
        self.offload = offload
        self.registry = registry
        self.device = device
        self.default_model = default_model
        # sample counts of one forecast to compile the sampling loop for at load (none: eager)
        self.compile_samples = compile_samples
        self._loaded: dict[tuple[str, str | None], Loaded] = {}
        self._load_lock = threading.Lock()

    def _load(self, asset: str, model_name: str | None) -> SSSDInferenceService:
        service = load_sssd_inference_service(
            asset,
            model_name=model_name,
            device=self.device,
            config=self.config,
            registry=self.registry,
        )
        if self.compile_samples:
            started = time.perf_counter()
            keys = service.compile_sampling(self.compile_samples)
            service.compile_encoder()
            service.compile_stream()
            logger.info(
                f"{asset}: encoder, streaming update and sampling for {', '.join(map(str, keys))} "
                f"compiled in {time.perf_counter() - started:.1f} s"
            )
        return service

    async def get(self, asset: str, model_name: str | None = None) -> Loaded:
        """The loaded service of ``asset`` (``model_name`` None: the default model).

        Raises:
            NotFoundError: no checkpoint for that asset or model (lists what exists).
        """
        key = self.key(asset, model_name)
        if key in self._loaded:
            return self._loaded[key]

        def load() -> SSSDInferenceService:
            with self._load_lock:
                if key in self._loaded:
                    return self._loaded[key].service
                return self._load(*key)

        service = await self.offload(load)
        return self._loaded.setdefault(key, Loaded(service))

    def key(self, asset: str, model_name: str | None) -> tuple[str, str | None]:
        return asset.upper(), model_name or self.default_model

    def by_key(self, key: tuple[str, str | None]) -> Loaded:
        """An already loaded service (KeyError when ``get`` has not loaded it)."""
        return self._loaded[key]

    def loaded(self) -> list[Loaded]:
        return list(self._loaded.values())
