"""Strict configuration: layering, overrides, validation messages, round trips, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from forex_diffusion.cli.main import app
from forex_diffusion.config.sssd_config import SSSDConfig, config_from_dict, load_sssd_config
from forex_diffusion.errors import ConfigError

ASSET = Path(__file__).resolve().parents[1] / "configs" / "sssd" / "eurusd_config.yaml"


def test_default_file_loads_with_spec_defaults(default_config_path: Path) -> None:
    cfg = load_sssd_config(default_config_path)
    assert isinstance(cfg, SSSDConfig)
    assert cfg.data.timeframes == ("5m", "15m", "1h", "4h")
    assert cfg.data.lookbacks == {"5m": 500, "15m": 166, "1h": 41, "4h": 10}
    assert cfg.data.horizons == (5, 15, 60, 240)
    assert cfg.model.loss.horizon_weights == (0.4, 0.3, 0.2, 0.1)
    assert cfg.model.diffusion.train_steps == 1000
    assert cfg.model.diffusion.cosine_s == 0.008
    assert cfg.inference.steps == 10 and cfg.inference.sampler == "dpmpp_2m_logsnr"
    assert cfg.inference.direction_threshold == 0.7
    assert cfg.training.early_stopping.patience == 15
    assert cfg.training.gradient_clip == 1.0


def test_layering_asset_then_overrides(default_config_path: Path) -> None:
    cfg = load_sssd_config(
        default_config_path,
        ASSET,
        ["training.epochs=100", "training.batch_size=64", "model.name=x1"],
    )
    assert cfg.asset.symbol == "EURUSD"
    assert cfg.training.epochs == 100 and cfg.training.batch_size == 64
    assert cfg.model.name == "x1"  # override wins over the asset config


def test_override_values_parsed_as_yaml(default_config_path: Path) -> None:
    cfg = load_sssd_config(
        default_config_path,
        overrides=[
            "data.horizons=[5, 15]",
            "model.loss.horizon_weights=[0.5, 0.5]",
            "paths.db_url=null",
        ],
    )
    assert cfg.data.horizons == (5, 15)
    assert cfg.paths.db_url is None


def test_config_is_frozen(default_config_path: Path) -> None:
    cfg = load_sssd_config(default_config_path)
    with pytest.raises(Exception, match="frozen"):
        cfg.training.epochs = 3  # type: ignore[misc]


def test_unknown_keys_named_with_suggestion_and_all_errors_at_once(
    default_config_path: Path,
) -> None:
    with pytest.raises(ConfigError) as info:
        load_sssd_config(
            default_config_path,
            overrides=[
                "training.epoch=3",
                "model.encoder.d_modle=64",
                "inference.steps=abc",
                "data.lookbacks.5m=0",
            ],
        )
    msg = str(info.value)
    assert "4 problem(s)" in msg
    assert "training.epoch: unknown key; did you mean 'training.epochs'?" in msg
    assert "model.encoder.d_modle: unknown key; did you mean 'model.encoder.d_model'?" in msg
    assert "inference.steps" in msg and "integer" in msg
    assert "data.lookbacks.5m" in msg and "greater than or equal to 1" in msg


def test_out_of_range_and_cross_field_errors(default_config_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"inference.direction_threshold.*less than or equal to 1"
    ):
        load_sssd_config(default_config_path, overrides=["inference.direction_threshold=1.5"])
    with pytest.raises(
        ConfigError, match=r"horizon_weights has 3 entries but data\.horizons has 4"
    ):
        load_sssd_config(
            default_config_path, overrides=["model.loss.horizon_weights=[0.5,0.3,0.2]"]
        )
    with pytest.raises(ConfigError, match="lookbacks must have one entry per timeframe"):
        load_sssd_config(default_config_path, overrides=["data.timeframes=[5m, 15m]"])


def test_bad_files_and_overrides(tmp_path: Path, default_config_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_sssd_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: [1, 2\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_sssd_config(bad)
    with pytest.raises(ConfigError, match=r"must look like section\.key=value"):
        load_sssd_config(default_config_path, overrides=["training.epochs"])


def test_round_trip_through_dict_and_yaml(tmp_path: Path, default_config_path: Path) -> None:
    cfg = load_sssd_config(default_config_path, ASSET)
    again = config_from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    path = tmp_path / "resolved.yaml"
    path.write_text(cfg.to_yaml())
    assert load_sssd_config(path) == cfg
    assert cfg.with_overrides(["training.epochs=7"]).training.epochs == 7


def test_every_yaml_key_is_a_schema_field(default_config_path: Path) -> None:
    """The default file and the schema agree exactly: no key in the file that nothing declares."""
    raw = yaml.safe_load(default_config_path.read_text())
    dumped = load_sssd_config(default_config_path).to_dict()

    def keys(d: object, prefix: str = "") -> set[str]:
        if not isinstance(d, dict) or (prefix.endswith("lookbacks")):
            return {prefix}
        out: set[str] = set()
        for k, v in d.items():
            out |= keys(v, f"{prefix}.{k}" if prefix else str(k))
        return out

    assert keys(raw) == keys(dumped)


def test_cli_show_and_schema(default_config_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(
        app, ["config", "show", "--config", str(default_config_path), "-o", "training.epochs=9"]
    )
    assert res.exit_code == 0, res.output
    assert yaml.safe_load(res.output)["training"]["epochs"] == 9
    res = runner.invoke(
        app, ["config", "show", "--config", str(default_config_path), "-o", "training.epoch=9"]
    )
    assert res.exit_code == 2
    assert "did you mean 'training.epochs'" in res.output
    res = runner.invoke(app, ["config", "schema"])
    assert res.exit_code == 0
    assert "properties" in json.loads(res.output)


def test_unquoted_date_override(default_config_path: Path) -> None:
    cfg = load_sssd_config(default_config_path, overrides=["data.splits.train.start=2019-01-01"])
    assert str(cfg.data.splits.train.start) == "2019-01-01"


def test_the_global_preset_is_cpu_small_but_for_its_splits_and_recipe(
    default_config_path: Path,
) -> None:
    """``cpu_small_global`` repeats cpu_small's values (a preset layers over the defaults only),
    so this keeps the two from drifting apart: they differ in the splits and the four recipe
    options, nothing else."""

    def flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    small = flat(load_sssd_config(default_config_path, preset="cpu_small").to_dict())
    pooled = flat(load_sssd_config(default_config_path, preset="cpu_small_global").to_dict())
    differ = {k for k in small.keys() | pooled.keys() if small.get(k) != pooled.get(k)}
    recipe = {
        "data.target_scale",
        "features.realized",
        "features.time_of_week",
        "training.ema_decay",
    }
    assert {k for k in differ if not k.startswith("data.splits.")} == recipe
    assert (
        pooled["data.target_scale"] == "ewma" and pooled["data.splits.test.start"] == "2019-01-01"
    )
