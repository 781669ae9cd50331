"""Checkpoints: round trip, weights-only loading, atomic writes, clear errors on bad files."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from forex_diffusion.errors import CheckpointError, NotFoundError
from forex_diffusion.models.build import build_sssd_model
from forex_diffusion.models.checkpoint import (
    FORMAT_VERSION,
    LoadedCheckpoint,
    load_checkpoint,
    save_checkpoint,
)
from forex_diffusion.models.sssd import SSSDModel
from sssd_test_utils import TINY_FEATURE_DIMS, random_features, tiny_config

torch.set_num_threads(1)

CONFIG = tiny_config()  # the application config the test model is built from

NAMES = {tf: [f"{tf}_f{i}" for i in range(n)] for tf, n in TINY_FEATURE_DIMS.items()}
STANDARDIZER = {"version": 1, "timeframes": {"5m": {"mean": [0.1, 0.2, 0.3], "std": [1, 2, 3]}}}


class _Opaque:
    pass


def _trained_model() -> SSSDModel:
    """A tiny model after a few optimizer steps (so that weights differ from any init)."""
    torch.manual_seed(0)
    model = build_sssd_model(CONFIG, TINY_FEATURE_DIMS)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    feats = random_features(CONFIG, TINY_FEATURE_DIMS, 4)
    y = torch.randn(4, 4, 1)
    for _ in range(3):
        opt.zero_grad()
        model(feats, y).loss.backward()
        opt.step()
    model._test_optimizer = opt  # type: ignore[attr-defined]
    return model


@pytest.fixture(scope="module")
def model() -> SSSDModel:
    return _trained_model()


@pytest.fixture()
def saved(tmp_path: Path, model: SSSDModel) -> Path:
    opt = model._test_optimizer  # type: ignore[attr-defined]
    extra = {"epoch": 3, "val_loss": 0.5, "optimizer_state": opt.state_dict()}
    return save_checkpoint(tmp_path / "ck" / "model.pt", model, CONFIG, NAMES, STANDARDIZER, extra)


def test_round_trip_gives_identical_predictions(saved: Path, model: SSSDModel) -> None:
    loaded = load_checkpoint(saved)
    assert isinstance(loaded, LoadedCheckpoint)
    assert not loaded.model.training
    assert loaded.config == CONFIG
    assert loaded.feature_names == NAMES
    assert loaded.standardizer == STANDARDIZER
    assert loaded.versions["format_version"] == FORMAT_VERSION
    assert loaded.versions["torch"] == torch.__version__
    assert {"forex_diffusion", "python"} <= set(loaded.versions)
    feats = random_features(CONFIG, TINY_FEATURE_DIMS, 2, seed=9)
    model.eval()
    a = model.inference_forward(
        feats, 32, "ddim", 10, 0.0, generator=torch.Generator().manual_seed(4)
    )
    b = loaded.model.inference_forward(
        feats, 32, "ddim", 10, 0.0, generator=torch.Generator().manual_seed(4)
    )
    assert torch.equal(a.samples, b.samples)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.model.state_dict()[name]), name


def test_optimizer_state_in_extra_survives_weights_only_loading(
    saved: Path, model: SSSDModel
) -> None:
    loaded = load_checkpoint(saved)
    assert loaded.extra["epoch"] == 3 and loaded.extra["val_loss"] == 0.5
    opt = torch.optim.AdamW(loaded.model.parameters(), lr=1e-2)
    opt.load_state_dict(loaded.extra["optimizer_state"])
    original = model._test_optimizer.state_dict()  # type: ignore[attr-defined]
    for k, state in opt.state_dict()["state"].items():
        assert torch.equal(state["exp_avg"], original["state"][k]["exp_avg"])


def test_the_network_module_knows_neither_checkpoints_nor_the_application_config() -> None:
    """checkpoint.py is the one place for save/load (no import cycle in models/), and the
    network takes only its own ModelConfig."""
    import ast

    import forex_diffusion.models.sssd as sssd

    tree = ast.parse(Path(sssd.__file__).read_text(encoding="utf-8"))
    imported = {
        (node.module or "", alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert not any("checkpoint" in module for module, _ in imported), imported
    assert ("forex_diffusion.config.sssd_config", "ModelConfig") in imported
    assert not any(name == "SSSDConfig" for _, name in imported), imported
    assert not hasattr(SSSDModel, "save_checkpoint") and not hasattr(SSSDModel, "load_checkpoint")


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path, model: SSSDModel) -> None:
    path = save_checkpoint(tmp_path / "m.pt", model, CONFIG, NAMES, STANDARDIZER)
    before = path.read_bytes()

    # picklable but not loadable weights-only: the save must fail and keep the old file
    with pytest.raises(CheckpointError, match="weights-only"):
        save_checkpoint(path, model, CONFIG, NAMES, STANDARDIZER, {"bad": _Opaque()})
    assert path.read_bytes() == before

    class Local:  # not even picklable
        pass

    with pytest.raises(CheckpointError, match="serialised"):
        save_checkpoint(path, model, CONFIG, NAMES, STANDARDIZER, {"bad": Local()})
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.pt"]


def test_save_rejects_mismatched_inputs(tmp_path: Path, model: SSSDModel) -> None:
    with pytest.raises(CheckpointError, match="feature_names"):
        save_checkpoint(tmp_path / "a.pt", model, CONFIG, {**NAMES, "5m": ["x"]}, {})
    with pytest.raises(CheckpointError, match="JSON"):
        save_checkpoint(tmp_path / "a.pt", model, CONFIG, NAMES, {"s": float("nan")})
    other = tiny_config(("model.encoder.d_model=8",))
    with pytest.raises(CheckpointError, match=r"model\.config"):
        save_checkpoint(tmp_path / "a.pt", model, other, NAMES, {})
    assert not (tmp_path / "a.pt").exists()


def _assert_clear(path: Path, match: str) -> None:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and match in message, message


def test_truncated_file(tmp_path: Path, saved: Path) -> None:
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    _assert_clear(bad, "cannot be read")


def test_flipped_bytes_in_the_weights(tmp_path: Path, saved: Path) -> None:
    data = bytearray(saved.read_bytes())
    loaded = load_checkpoint(saved)
    # find the bytes of a large weight tensor inside the file and flip them
    weight = loaded.model.encoder.encoders["5m"].blocks[0].out.weight.detach().numpy().tobytes()
    start = bytes(data).find(weight[:64])
    assert start > 0
    for i in range(start + 8, start + 40):
        data[i] ^= 0xFF
    bad = tmp_path / "flipped.pt"
    bad.write_bytes(bytes(data))
    _assert_clear(bad, "sha256")


def test_random_bytes_and_empty_file(tmp_path: Path) -> None:
    noise = tmp_path / "noise.pt"
    noise.write_bytes(os.urandom(4096))
    _assert_clear(noise, "cannot be read")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    _assert_clear(empty, "cannot be read")


def test_foreign_torch_file(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "epoch": 1}, foreign)
    _assert_clear(foreign, "not a forex_diffusion SSSD checkpoint")
    plain = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), plain)
    _assert_clear(plain, "not a forex_diffusion SSSD checkpoint")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo should-never-run",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.pt"
    torch.save({"format": "forex_diffusion.sssd", "payload": _Evil()}, evil)
    _assert_clear(evil, "pickled Python objects")
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps({"a": 1}))
    _assert_clear(raw, "cannot be read")


def test_newer_format_and_incomplete_payload(tmp_path: Path, saved: Path) -> None:
    payload = torch.load(saved, weights_only=True)
    payload["format_version"] = FORMAT_VERSION + 1
    newer = tmp_path / "newer.pt"
    torch.save(payload, newer)
    _assert_clear(newer, "format version")
    del payload["state_dict"]
    payload["format_version"] = FORMAT_VERSION
    incomplete = tmp_path / "incomplete.pt"
    torch.save(payload, incomplete)
    _assert_clear(incomplete, "missing ['state_dict']")


def test_weights_that_do_not_fit_the_config(tmp_path: Path, saved: Path) -> None:
    from forex_diffusion.models.checkpoint import weights_digest

    payload = torch.load(saved, weights_only=True)
    payload["state_dict"]["head.out.weight"] = torch.zeros(1, 5)
    payload["weights_sha256"] = weights_digest(payload["state_dict"])
    bad = tmp_path / "shape.pt"
    torch.save(payload, bad)
    _assert_clear(bad, "do not fit")


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"nope\.pt"):
        load_checkpoint(tmp_path / "nope.pt")


def test_payload_merged_into_a_lightning_style_checkpoint_loads(
    tmp_path: Path, model: SSSDModel
) -> None:
    from forex_diffusion.models.checkpoint import checkpoint_payload

    opt = model._test_optimizer  # type: ignore[attr-defined]
    ckpt = {
        "epoch": 4,
        "global_step": 120,
        "state_dict": model.state_dict(),
        "optimizer_states": [opt.state_dict()],
        "callbacks": {"SSSDCheckpoint": {"best_val": 0.3, "best_epoch": 2}},
    }
    ckpt.update(checkpoint_payload(model, CONFIG, NAMES, STANDARDIZER))
    path = tmp_path / "last.ckpt"
    torch.save(ckpt, path)
    loaded = load_checkpoint(path)
    assert loaded.extra["epoch"] == 4 and loaded.extra["global_step"] == 120
    assert loaded.extra["callbacks"]["SSSDCheckpoint"]["best_epoch"] == 2
    assert len(loaded.extra["optimizer_states"]) == 1
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.model.state_dict()[name]), name
