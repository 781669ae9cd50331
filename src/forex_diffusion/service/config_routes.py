"""``/v1/config/...`` and ``/v1/device``: what the Train page's form and device check read."""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

import torch
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from forex_diffusion.config.sssd_config import (
    DEFAULT_CONFIG_PATH,
    SSSDConfig,
    config_json_schema,
    parse_yaml,
    resolve_preset,
)
from forex_diffusion.errors import ConfigError
from forex_diffusion.service.auth import require_token
from forex_diffusion.service.routes import ERRORS
from forex_diffusion.service.routes import _job_config as job_config
from forex_diffusion.service.schemas import NAME
from forex_diffusion.service.state import ServiceState
from forex_diffusion.training.train_sssd import resolve_precision

router = APIRouter(
    prefix="/v1", dependencies=[Depends(require_token)], responses=ERRORS, tags=["ui"]
)
FIXED_SECTIONS = ("paths",)  # not changeable over HTTP (see routes._job_config)


def _state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


StateDep = Annotated[ServiceState, Depends(_state)]


def flatten(data: dict[str, Any], prefix: str = "") -> list[str]:
    """``{"a": {"b": 1}}`` → ``["a.b=1"]`` (values as JSON, which YAML reads back unchanged)."""
    import json

    out: list[str] = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.extend(flatten(value, f"{path}."))
        else:
            out.append(f"{path}={json.dumps(value, default=str)}")
    return out


def preset_names() -> list[str]:
    """Preset files beside the default config (``cpu_small``, ...)."""
    return sorted(
        p.stem for p in DEFAULT_CONFIG_PATH.parent.glob("*.yaml") if p != DEFAULT_CONFIG_PATH
    )


def preset_config(base: SSSDConfig, name: str) -> SSSDConfig:
    """``base`` with the preset's values layered on (its ``paths`` are ignored)."""
    data = parse_yaml(resolve_preset(name).read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"preset {name!r} is not a mapping of sections")
    data = {k: v for k, v in data.items() if k not in FIXED_SECTIONS}
    return base.with_overrides(flatten(data))


@router.get("/config/schema")
def schema(state: StateDep) -> dict[str, Any]:
    """The configuration's JSON schema, the service's config (the form's starting values), the
    presets' configs, and the sections that cannot be changed over HTTP."""
    base = state.settings.config
    presets = {"service": base.to_dict()}
    for name in preset_names():
        presets[name] = preset_config(base, name).to_dict()
    return {
        "schema": config_json_schema(),
        "config": base.to_dict(),
        "presets": presets,
        "fixed_sections": list(FIXED_SECTIONS),
    }


class ValidateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    asset: str = Field(pattern=NAME)
    model: str | None = Field(None, pattern=NAME)
    overrides: list[str] = Field(default_factory=list, max_length=256)


@router.post("/config/validate")
def validate(body: ValidateRequest, state: StateDep) -> dict[str, Any]:
    """The config a train job with these overrides would run (422 ``ConfigError`` naming
    every bad key path otherwise)."""
    config = job_config(state, body.asset, body.model, body.overrides)
    return {"valid": True, "config": config.to_dict()}


def device_report(configured: str) -> dict[str, Any]:
    """CPU threads, CUDA devices (name, memory, bf16) and the precision ``configured`` resolves
    to on the device training would use."""
    cuda = torch.cuda.is_available()
    devices = []
    if cuda:
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            devices.append(
                {
                    "index": i,
                    "name": props.name,
                    "memory_gib": props.total_memory / 2**30,
                    "capability": f"{props.major}.{props.minor}",
                    "bf16": bool(torch.cuda.is_bf16_supported()),
                }
            )
    accelerator = "gpu" if cuda else "cpu"
    return {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_available": cuda,
        "cuda_devices": devices,
        "accelerator": accelerator,
        "precision_setting": configured,
        "precision": resolve_precision(configured, accelerator),
        "torch": torch.__version__,
    }


@router.get("/device")
def device(
    state: StateDep, precision: Literal["auto", "32", "bf16-mixed", "16-mixed"] | None = None
) -> dict[str, Any]:
    """Where training would run and in which precision (``precision``: a setting to resolve,
    default the service config's)."""
    return device_report(precision or state.settings.config.training.precision)
