"""Safe SSSD checkpoints: atomic writes, weights-only loads, integrity digest, clear errors.

File layout (a ``torch.save`` dict of primitives and tensors only, loadable with
``weights_only=True``):

    format          "forex_diffusion.sssd"
    format_version  int (FORMAT_VERSION)
    versions        {"format_version", "forex_diffusion", "torch", "python"}
    config_json     the whole SSSDConfig as a JSON string
    feature_names   {timeframe: [feature names]} (their lengths are the model's feature dims)
    standardizer_json  the standardizer as a JSON string
    state_dict      model weights
    weights_sha256  digest of the weights (names, dtypes, shapes, bytes)
    extra           caller data (tensors/primitives only, e.g. optimizer_state for resume)

``checkpoint_payload`` builds this dict without writing it, e.g. to merge into a Lightning
checkpoint; ``load_checkpoint`` then returns the foreign top-level keys inside ``extra``.

Writes go to a temporary file in the target directory, are read back weights-only, then moved
into place with ``os.replace`` (a crash never leaves a half-written checkpoint under ``path``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from forex_diffusion import __version__
from forex_diffusion.config.sssd_config import SSSDConfig, config_from_dict
from forex_diffusion.errors import CheckpointError, ConfigError, NotFoundError
from forex_diffusion.models.build import build_sssd_model, built_from
from forex_diffusion.models.sssd import SSSDModel

FORMAT = "forex_diffusion.sssd"
FORMAT_VERSION = 1
_REQUIRED = (
    "format_version",
    "versions",
    "config_json",
    "feature_names",
    "standardizer_json",
    "state_dict",
    "weights_sha256",
)
_OWN_KEYS = frozenset((*_REQUIRED, "format", "extra", "calibration_json"))


@dataclass
class LoadedCheckpoint:
    """A loaded checkpoint; ``model`` is in eval mode on ``map_location``."""

    model: SSSDModel
    config: SSSDConfig
    feature_names: dict[str, list[str]]
    standardizer: dict[str, Any]
    extra: dict[str, Any]
    versions: dict[str, Any]
    calibration: dict[str, Any] | None = None


def weights_digest(state_dict: Mapping[str, Tensor]) -> str:
    """sha256 over parameter names, dtypes, shapes and raw bytes (sorted by name)."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def checkpoint_payload(
    model: SSSDModel,
    config: SSSDConfig,
    feature_names: Mapping[str, Sequence[str]],
    standardizer: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
    where: str = "checkpoint",
) -> dict[str, Any]:
    """The checkpoint dict (primitives and tensors only) without writing it.

    Its keys may also be merged into a larger dict (e.g. a Lightning checkpoint whose
    ``state_dict`` is the bare model's): ``load_checkpoint`` reads such a file and returns the
    other top-level keys in ``extra``.

    Raises:
        CheckpointError: config differing from the model's, feature names not matching the model's
            feature dims, or a standardizer that is not JSON-serialisable.
    """
    if not built_from(model, config):
        raise CheckpointError(
            f"cannot save {where}: the config's model section/timeframes/horizons differ from the "
            "ones the model was built with (model.config, model.timeframes, model.horizons); pass "
            "the application config the model was built from"
        )
    names = {tf: [str(n) for n in feature_names.get(tf, [])] for tf in model.timeframes}
    wrong = {
        tf: (len(names[tf]), model.feature_dims[tf])
        for tf in model.timeframes
        if len(names[tf]) != model.feature_dims[tf]
    }
    if wrong or set(feature_names) != set(model.timeframes):
        raise CheckpointError(
            f"cannot save {where}: feature_names must list one name per feature per timeframe "
            f"{list(model.timeframes)}; (given, expected) counts: {wrong or dict(feature_names)}"
        )
    try:
        standardizer_json = json.dumps(standardizer, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"cannot save {where}: the standardizer must be a JSON-serialisable dict of finite "
            f"numbers, lists and strings ({exc})"
        ) from exc
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": {
            "format_version": FORMAT_VERSION,
            "forex_diffusion": __version__,
            "torch": str(torch.__version__),
            "python": platform.python_version(),
        },
        "config_json": json.dumps(config.to_dict()),
        "feature_names": names,
        "standardizer_json": standardizer_json,
        "state_dict": state,
        "weights_sha256": weights_digest(state),
        "extra": dict(extra or {}),
    }


def save_checkpoint(
    path: str | Path,
    model: SSSDModel,
    config: SSSDConfig,
    feature_names: Mapping[str, Sequence[str]],
    standardizer: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically; returns the final path.

    Args:
        path: destination file (parent directories are created).
        model: the model; its architecture must match ``config``.
        config: the application config the model was built from (stored whole).
        feature_names: {timeframe: names}; lengths must equal the model's feature dims.
        standardizer: JSON-serialisable dict (the fitted feature standardizer).
        extra: tensors/primitives only (e.g. ``optimizer_state``, epoch, metrics).

    Raises:
        CheckpointError: mismatched config/feature names, non-JSON standardizer, or an ``extra``
            that cannot be loaded weights-only (the previous file at ``path`` is kept).
    """
    path = Path(path)
    payload = checkpoint_payload(model, config, feature_names, standardizer, extra, str(path))
    return _write_payload(payload, path)


def _write_payload(payload: dict[str, Any], path: Path) -> Path:
    """Write atomically (temporary file, fsync, rename) after checking it loads weights-only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            try:
                torch.save(payload, fh)
            except Exception as exc:
                raise CheckpointError(
                    f"cannot save {path}: the payload cannot be serialised ({type(exc).__name__}: "
                    f"{exc}); keep `extra` to tensors, numbers, strings, lists, tuples and dicts"
                ) from exc
            fh.flush()
            os.fsync(fh.fileno())
        try:
            torch.load(tmp, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(
                f"cannot save {path}: the checkpoint would not load weights-only "
                f"({_describe_load_error(exc)}); keep `extra` to tensors, numbers, strings, "
                "lists, tuples and dicts"
            ) from exc
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def attach_calibration(path: str | Path, calibration: Mapping[str, Any]) -> Path:
    """Store a recalibration map (JSON-able dict) in the checkpoint at ``path``, atomically.

    The weights, config and everything else are kept as they are (their digest still holds).
    """
    path = Path(path)
    load_checkpoint(path)  # verified before it is rewritten
    payload = torch.load(path, map_location="cpu", weights_only=True)
    payload["calibration_json"] = json.dumps(dict(calibration))
    return _write_payload(payload, path)


def _describe_load_error(exc: Exception) -> str:
    text = str(exc)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    detail = next((ln for ln in lines if "GLOBAL" in ln), lines[0] if lines else "")
    if "GLOBAL" in text:
        return f"contains pickled Python objects that weights-only loading refuses ({detail})"
    return (
        "cannot be read: truncated, corrupted or not a torch file "
        f"({type(exc).__name__}: {detail[:300]})"
    )


def _fail(path: Path, problem: str) -> CheckpointError:
    return CheckpointError(
        f"checkpoint {path}: {problem}. Use a checkpoint written by forex_diffusion "
        "(save_checkpoint / training), or re-train the model."
    )


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Load and verify a checkpoint written by ``save_checkpoint`` (weights only, no pickle).

    Raises:
        NotFoundError: no file at ``path``.
        CheckpointError: truncated, corrupted, foreign, newer-format or mismatched content.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(
            f"{path} is a directory, not a checkpoint file; move it away and train again (or "
            "point to the .ckpt file)"
        )
    if not path.is_file():
        raise NotFoundError(f"checkpoint not found: {path} (check the path or the registry entry)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for bad files
        raise _fail(path, _describe_load_error(exc)) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        keys = (
            sorted(map(str, payload))[:8] if isinstance(payload, dict) else type(payload).__name__
        )
        raise _fail(
            path, f"is not a forex_diffusion SSSD checkpoint (no '{FORMAT}' marker; found {keys})"
        )
    missing = [k for k in _REQUIRED if k not in payload]
    if missing:
        raise _fail(path, f"is incomplete: missing {missing}")
    version = payload["format_version"]
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise _fail(
            path,
            f"has format version {version!r}, this forex_diffusion {__version__} reads up to "
            f"{FORMAT_VERSION} (upgrade the package)",
        )
    state = payload["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise _fail(path, "has a malformed state_dict")
    if weights_digest(state) != payload["weights_sha256"]:
        raise _fail(path, "weights do not match their stored sha256 digest (the file is corrupted)")
    try:
        config = config_from_dict(json.loads(payload["config_json"]), source=f"{path} (config)")
        standardizer = json.loads(payload["standardizer_json"])
    except (json.JSONDecodeError, TypeError, ConfigError) as exc:
        raise _fail(path, f"has an unreadable or invalid config/standardizer ({exc})") from exc
    feature_names = payload["feature_names"]
    if not isinstance(feature_names, dict):
        raise _fail(path, "has malformed feature_names")
    try:
        model = build_sssd_model(config, {tf: len(names) for tf, names in feature_names.items()})
        model.load_state_dict(state, strict=True)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise _fail(path, f"weights do not fit the stored configuration ({exc})") from exc
    model.to(map_location)
    model.eval()
    return LoadedCheckpoint(
        model=model,
        config=config,
        feature_names={tf: list(n) for tf, n in feature_names.items()},
        standardizer=standardizer,
        # caller extras, plus any foreign top-level keys (e.g. Lightning's optimizer_states)
        extra={
            **{k: v for k, v in payload.items() if k not in _OWN_KEYS},
            **dict(payload.get("extra") or {}),
        },
        versions=dict(payload["versions"]),
        calibration=json.loads(payload["calibration_json"])
        if "calibration_json" in payload
        else None,
    )
