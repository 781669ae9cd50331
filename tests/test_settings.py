"""One settings object: flag > FOREX_DIFFUSION_* environment > config > default."""

from __future__ import annotations

from pathlib import Path

import pytest

from forex_diffusion.config.sssd_config import DEFAULT_CONFIG_PATH, PRESETS_DIR, load_sssd_config
from forex_diffusion.settings import ENV_DATA_DIR, ENV_DB_URL, Settings

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_flag_beats_env_beats_config_beats_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_DATA_DIR, raising=False)
    monkeypatch.delenv(ENV_DB_URL, raising=False)
    cfg = load_sssd_config(
        DEFAULT_CONFIG_PATH,
        overrides=["paths.data_dir=/cfg/data", "paths.db_url=sqlite:////cfg.db"],
    )
    assert Settings.from_flags().data_dir_for() == Path("data")
    assert Settings.from_flags().data_dir_for(cfg) == Path("/cfg/data")
    assert Settings.from_flags().db_url_for(cfg) == "sqlite:////cfg.db"
    monkeypatch.setenv(ENV_DATA_DIR, "/env/data")
    monkeypatch.setenv(ENV_DB_URL, " sqlite:////env.db ")
    assert Settings.from_flags().data_dir_for(cfg) == Path("/env/data")
    assert Settings.from_flags().db_url_for(cfg) == "sqlite:////env.db"
    flags = Settings.from_flags(data_dir="/flag", db_url="sqlite:////flag.db")
    assert flags.data_dir_for(cfg) == Path("/flag")
    assert flags.db_url_for(cfg) == "sqlite:////flag.db"


def test_empty_values_count_as_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_DATA_DIR, "")
    monkeypatch.setenv(ENV_DB_URL, "   ")
    settings = Settings.from_flags(data_dir="", db_url="")
    assert settings.data_dir is None and settings.db_url is None
    assert settings.data_dir_for() == Path("data")
    assert settings.db_url_for() == f"sqlite:///{Path('artifacts/registry.db').absolute()}"


def test_home_is_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_DATA_DIR, "~/fx-store")
    assert Settings.from_flags().data_dir_for() == Path("~/fx-store").expanduser()


def test_presets_are_package_data_linked_from_the_repository() -> None:
    import forex_diffusion

    package = Path(forex_diffusion.__file__).parent
    assert package / "configs" / "sssd" == PRESETS_DIR
    names = sorted(p.name for p in PRESETS_DIR.glob("*.yaml"))
    assert {"default_config.yaml", "cpu_small.yaml", "eurusd_config.yaml"} <= set(names)
    linked = REPO_ROOT / "configs" / "sssd"  # the path README and SPEC commands use
    assert sorted(p.name for p in linked.glob("*.yaml")) == names
    assert (linked / "default_config.yaml").resolve() == DEFAULT_CONFIG_PATH.resolve()
