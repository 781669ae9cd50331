"""Checkpoint paths travel with the artifacts folder: stored relative to its root, handed out
absolute, and old absolute rows found again under a copied root."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

from forex_diffusion.registry.repository import Registry

CONFIGS = {
    "architecture_config": {"d_model": 8},
    "training_config": {"epochs": 1},
    "feature_config": {"names": ["returns"]},
    "horizon_config": {"horizons": [5]},
}


def _artifacts(root: Path) -> Path:
    ckpt = root / "sssd" / "checkpoints" / "EURUSD" / "m" / "best.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"weights")
    with Registry(f"sqlite:///{root / 'registry.db'}") as reg:
        model = reg.register_model("EURUSD", "m", **CONFIGS)
        rec = reg.record_checkpoint(model.id, ckpt, 1, True, 0.5, 0.4)
        assert rec.path == str(ckpt)
    return ckpt


def _stored(root: Path) -> list[str]:
    with sqlite3.connect(root / "registry.db") as db:
        return [p for (p,) in db.execute("SELECT path FROM sssd_checkpoints")]


def test_paths_are_stored_relative_and_resolved_under_a_copy(tmp_path: Path) -> None:
    first = tmp_path / "a"
    _artifacts(first)
    assert _stored(first) == ["sssd/checkpoints/EURUSD/m/best.ckpt"]
    copy = tmp_path / "b"
    shutil.copytree(first, copy)
    shutil.rmtree(first)
    with Registry(f"sqlite:///{copy / 'registry.db'}") as reg:
        best = reg.best_checkpoint("EURUSD")
        assert best.path == str(copy / "sssd" / "checkpoints" / "EURUSD" / "m" / "best.ckpt")
        assert Path(best.path).is_file()
        # re-recording the same file updates its row instead of adding one
        reg.record_checkpoint(best.model_id, best.path, 2, True, 0.3, 0.2)
        assert [c.epoch for c in reg.list_checkpoints("EURUSD")] == [2]
        assert reg.delete_checkpoint(best.path)


def test_old_absolute_rows_are_found_under_a_copied_root(tmp_path: Path) -> None:
    first = tmp_path / "a"
    ckpt = _artifacts(first)
    with sqlite3.connect(first / "registry.db") as db:  # a row as older versions wrote it
        db.execute("UPDATE sssd_checkpoints SET path = ?", (str(ckpt),))
    with Registry(f"sqlite:///{first / 'registry.db'}") as reg:
        assert reg.best_checkpoint("EURUSD").path == str(ckpt)
    copy = tmp_path / "moved"
    shutil.copytree(first, copy)
    shutil.rmtree(first)
    with Registry(f"sqlite:///{copy / 'registry.db'}") as reg:
        best = reg.best_checkpoint("EURUSD")
        assert best.path == str(copy / "sssd" / "checkpoints" / "EURUSD" / "m" / "best.ckpt")
        # recording it again rewrites the old absolute row in the relative form
        reg.record_checkpoint(best.model_id, best.path, 1, True, 0.5, 0.4)
    assert _stored(copy) == ["sssd/checkpoints/EURUSD/m/best.ckpt"]


def test_paths_outside_the_root_stay_absolute(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "best.ckpt"
    outside.parent.mkdir()
    outside.write_bytes(b"w")
    root = tmp_path / "art"
    root.mkdir()
    with Registry(f"sqlite:///{root / 'registry.db'}") as reg:
        model = reg.register_model("EURUSD", "m", **CONFIGS)
        assert reg.record_checkpoint(model.id, outside, 1, True, 0.5, 0.4).path == str(outside)
    assert _stored(root) == [str(outside)]


ALL = {"--data-dir", "--artifacts-dir", "--db-url"}
# what a command touches decides its location flags: the store only, the registry only, or
# neither (config schema; quickstart builds its own folder); every other command takes all three
ONLY = {
    "data": {"--data-dir"},
    "registry": {"--artifacts-dir", "--db-url"},
    "db": {"--artifacts-dir", "--db-url"},
    "config schema": set(),
    "quickstart": set(),
}


def _commands() -> dict[str, set[str]]:
    import typer

    from forex_diffusion.cli.main import app

    root = typer.main.get_command(app)
    ctx = typer.Context(root)
    found: dict[str, set[str]] = {}

    def walk(cmd: Any, name: str) -> None:
        if hasattr(cmd, "list_commands"):  # a group (typer's own click)
            for sub in cmd.list_commands(ctx):
                child = cmd.get_command(ctx, sub)
                assert child is not None
                walk(child, f"{name} {sub}".strip())
        else:
            found[name] = {o for p in cmd.params for o in p.opts} & ALL

    walk(root, "")
    return found


def test_every_command_takes_the_location_flags_of_what_it_touches() -> None:
    commands = _commands()
    assert {"train", "calibrate", "serve", "tune", "train-many", "ensemble fit"} <= set(commands)
    for name, flags in commands.items():
        group = next((k for k in ONLY if name == k or name.startswith(k + " ")), None)
        assert flags == (ALL if group is None else ONLY[group]), name
