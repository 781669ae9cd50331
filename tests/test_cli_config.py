"""``config show`` marks where every value came from; ``config schema`` describes every key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from forex_diffusion.cli.main import app
from forex_diffusion.settings import ENV_ARTIFACTS_DIR, ENV_DATA_DIR, ENV_DB_URL


def _show(*args: str) -> dict[str, dict[str, object]]:
    res = CliRunner().invoke(app, ["config", "show", "--json", *args])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_show_marks_env_preset_override_and_flag(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ENV_DATA_DIR, str(tmp_path / "env_data"))
    monkeypatch.setenv(ENV_DB_URL, f"sqlite:///{tmp_path / 'env.db'}")
    monkeypatch.delenv(ENV_ARTIFACTS_DIR, raising=False)
    shown = _show("--preset", "cpu_small", "-o", "training.epochs=3", "--artifacts-dir", "/x/art")
    assert shown["paths.data_dir"] == {"value": str(tmp_path / "env_data"), "source": "env"}
    assert shown["paths.db_url"]["source"] == "env"
    assert shown["training.epochs"] == {"value": 3, "source": "override"}
    assert shown["paths.artifacts_dir"] == {"value": "/x/art", "source": "flag"}
    # the checkpoints and logs move with a new artifacts root
    assert shown["paths.checkpoint_dir"] == {"value": "/x/art/sssd/checkpoints", "source": "flag"}
    assert shown["model.name"]["source"] == "preset"
    assert shown["asset.symbol"]["source"] == "default"
    # a flag beats the environment
    flagged = _show("--data-dir", str(tmp_path / "flag_data"))
    assert flagged["paths.data_dir"] == {"value": str(tmp_path / "flag_data"), "source": "flag"}


def test_show_yaml_has_a_source_after_every_value(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ENV_DATA_DIR, str(tmp_path / "d"))
    res = CliRunner().invoke(app, ["config", "show", "--asset", "usdjpy"])
    assert res.exit_code == 0, res.output
    assert f"data_dir: {tmp_path / 'd'}  # env" in res.stdout
    assert "symbol: USDJPY  # override" in res.stdout and "pip_size: 0.01  # override" in res.stdout
    values = [line for line in res.stdout.splitlines() if not line.rstrip().endswith(":")]
    assert all("  # " in line for line in values)


def test_schema_describes_every_key() -> None:
    res = CliRunner().invoke(app, ["config", "schema"])
    schema = json.loads(res.stdout)
    missing = [
        f"{name}.{key}"
        for name, node in [("SSSDConfig", schema), *schema["$defs"].items()]
        for key, prop in node.get("properties", {}).items()
        if not prop.get("description")
    ]
    assert not missing
    assert (
        "bit-identical" in schema["$defs"]["InferenceConfig"]["properties"]["seed"]["description"]
    )
