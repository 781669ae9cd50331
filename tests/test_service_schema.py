"""Schemathesis against the live OpenAPI schema: no server errors, responses conform.

Bounded: a fixed number of generated requests per operation, and a time limit. Job creation
(it starts worker processes: train, evaluate, ensemble, resume) and the endless event stream are
left out; they have their own tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from forex_diffusion.data.store import CandleStore
from forex_diffusion.service.app import create_app
from forex_diffusion.service.settings import Limits
from fx_test_utils import load_fx
from service_utils import STORE_END, trained_root
from service_utils import settings as service_settings

pytestmark = pytest.mark.realdata
MAX_EXAMPLES = 20


@pytest.fixture(scope="module")
def api_schema(fx_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("schema")
    config = trained_root(fx_dir, root)
    data_dir = root / "fuzzed-store"  # generated bars land here, not in the training store
    CandleStore(data_dir).write("EURUSD", load_fx(fx_dir, "2019-02-10", STORE_END), source="t")
    limits = Limits(max_num_samples=64, max_steps=8, max_candles=5_000)  # bounded request time
    app = create_app(service_settings(config, data_dir=data_dir, limits=limits))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return schema.exclude(
        path_regex=r"^/v1/(jobs/(train|evaluate|ensemble)|stream/|runs/\{run_id\}/resume)"
    )


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.mark.timeout(900)
def test_api_conforms_to_its_schema(api_schema: Any) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    paths = {op.path for op in operations}
    assert {"/health", "/v1/predict", "/v1/bars", "/v1/jobs/{job_id}"} <= paths
    assert not any(p.startswith(("/v1/stream", "/v1/jobs/train")) for p in paths)
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Any) -> None:
            case.call_and_validate(checks=CHECKS)

        check()
