"""Shared pytest fixtures: real-data location, small synthetic markets, single-threaded torch."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

try:  # keep each xdist worker on one thread (2-core CI)
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass

pytest_plugins = ["postgres_fixture"]  # postgres_server, registry_url (tests/postgres_fixture.py)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "configs" / "sssd" / "default_config.yaml"


def shared_fx_dir() -> Path:
    """../shared/data/fx beside the repository (or FOREX_DIFFUSION_SHARED_DATA)."""
    env = os.environ.get("FOREX_DIFFUSION_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data" / "fx"


# CI sets this: a missing real-data folder is then a failure, never a silent skip
REQUIRE_DATA_ENV = "FOREX_DIFFUSION_REQUIRE_DATA"


def _have_real_data(path: Path) -> bool:
    return (path / "EURUSD_M1_2019.csv.gz").is_file()


def _missing_data_message(path: Path) -> str:
    return (
        f"real FX data not found at {path}: put ../shared/data/fx beside the repository or set "
        "FOREX_DIFFUSION_SHARED_DATA"
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    path = shared_fx_dir()
    if os.environ.get(REQUIRE_DATA_ENV) == "1" and not _have_real_data(path):
        pytest.exit(f"{REQUIRE_DATA_ENV}=1 but {_missing_data_message(path)}", returncode=3)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Exactly the tests that read real data carry ``realdata``: those using ``fx_dir``."""
    for item in items:
        if "fx_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.realdata)


@pytest.fixture(scope="session")
def fx_dir() -> Path:
    path = shared_fx_dir()
    if not _have_real_data(path):
        if os.environ.get(REQUIRE_DATA_ENV) == "1":
            pytest.fail(_missing_data_message(path))
        pytest.skip(_missing_data_message(path))
    return path


@pytest.fixture(autouse=True)
def _restore_mlflow_environment() -> Iterator[None]:
    """MLflow writes MLFLOW_TRACKING_URI into os.environ when a logger sets its URI; without
    this, every later subprocess of the same worker (trainings, Ray jobs, the UI server) would
    log to that test's temporary store."""
    before = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    yield
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        if key not in before:
            del os.environ[key]
    os.environ.update(before)


@pytest.fixture(scope="session")
def default_config_path() -> Path:
    return DEFAULT_CONFIG


@pytest.fixture(scope="session")
def synth_month() -> pd.DataFrame:
    """Four weeks of synthetic 1-minute candles (seeded)."""
    from forex_diffusion.data.synthetic import generate_synthetic_market

    return generate_synthetic_market("2021-03-01", "2021-03-29", seed=7)
