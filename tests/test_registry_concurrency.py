"""Several processes on one registry (spawned, real databases): no duplicate rows, no leaked
tracebacks; a run left ``running`` by a killed process can be marked ``interrupted``."""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
from pathlib import Path
from typing import Any

import pytest

from forex_diffusion.registry import Registry

CONFIGS: dict[str, dict[str, Any]] = {
    "architecture_config": {"d_model": 128},
    "training_config": {"epochs": 10},
    "feature_config": {"names": ["returns"]},
    "horizon_config": {"horizons": [5, 15, 60, 240]},
}
NAMES = [f"race_{i}" for i in range(5)]
TIMEOUT_S = 120


def _register_worker(url: str, barrier: Any, results: Any, steps: Any) -> None:
    """Open the (empty) registry and register NAMES, in lockstep with the other worker;
    ``steps`` receives each step reached (said by the test when a worker never finishes)."""
    try:
        steps.put((os.getpid(), "started"))
        barrier.wait(TIMEOUT_S)
        with Registry(url) as reg:  # both processes migrate the empty database at once
            steps.put((os.getpid(), "migrated"))
            ids = []
            for name in NAMES:
                barrier.wait(TIMEOUT_S)
                ids.append(reg.register_model("EURUSD", name, **CONFIGS).id)
                steps.put((os.getpid(), f"registered {name}"))
        results.put(("ok", os.getpid(), ids))
    except BaseException as exc:  # reported to the test, never printed
        results.put(("error", os.getpid(), f"{type(exc).__name__}: {exc}"))


def _steps_reached(steps: Any) -> list[tuple[int, str]]:
    reached = []
    while True:
        try:
            reached.append(steps.get(timeout=1))
        except queue.Empty:
            return reached


def _training_worker(url: str, model_id: int, results: Any) -> None:
    """Start a run, report it, then hang like a stuck trainer until killed."""
    with Registry(url) as reg:
        run = reg.start_run(model_id, "doomed", {"train": "2020"}, {"lr": 1e-3}, "cpu")
    results.put(run.id)
    signal.pause()


def test_two_processes_register_the_same_model(
    registry_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    results, steps = ctx.Queue(), ctx.Queue()
    procs = [
        ctx.Process(target=_register_worker, args=(registry_url, barrier, results, steps))
        for _ in range(2)
    ]
    for proc in procs:
        proc.start()
    try:
        # a spawned interpreter imports the registry first: generous on a loaded machine
        outcomes = [results.get(timeout=2 * TIMEOUT_S) for _ in procs]
    except queue.Empty:
        for proc in procs:
            proc.kill()
        pytest.fail(f"a worker never finished; steps reached: {_steps_reached(steps)}")
    for proc in procs:
        proc.join(TIMEOUT_S)
    assert [o[0] for o in outcomes] == ["ok", "ok"], outcomes
    assert outcomes[0][2] == outcomes[1][2]  # same ids for every name
    assert all(proc.exitcode == 0 for proc in procs)
    with Registry(registry_url) as reg:
        models = reg.list_models("EURUSD")
    assert sorted(m.model_name for m in models) == NAMES  # one row each, nothing lost
    assert sorted(m.id for m in models) == sorted(outcomes[0][2])
    assert "Traceback" not in capfd.readouterr().err


def test_run_of_a_killed_process_is_marked_interrupted(registry_url: str) -> None:
    with Registry(registry_url) as reg:
        model = reg.register_model("EURUSD", "m", **CONFIGS)
        ctx = mp.get_context("spawn")
        results = ctx.Queue()
        proc = ctx.Process(target=_training_worker, args=(registry_url, model.id, results))
        proc.start()
        try:
            run_id = results.get(timeout=TIMEOUT_S)
            assert reg.get_run(run_id).status == "running"
            assert reg.mark_stale_runs_interrupted() == []  # still alive: left alone
        finally:
            os.kill(proc.pid or 0, signal.SIGKILL)
            proc.join(TIMEOUT_S)
        marked = reg.mark_stale_runs_interrupted()
        assert [r.id for r in marked] == [run_id]
        run = reg.get_run(run_id)
        assert run.status == "interrupted" and run.completed_at is not None
        assert f"process {proc.pid}" in (run.error_message or "")
        assert reg.mark_stale_runs_interrupted() == []  # nothing left to mark


def _connect_worker(url: str, barrier: Any, results: Any) -> None:
    """Open a connection to ``url`` the moment the other worker does (forked: no imports)."""
    from forex_diffusion.registry.db import create_registry_engine

    try:
        engine = create_registry_engine(url)
        barrier.wait(TIMEOUT_S)
        with engine.connect():
            pass
        results.put("ok")
    except BaseException as exc:  # reported to the test
        results.put(f"{type(exc).__name__}: {exc}")


def test_first_connections_to_a_new_sqlite_file_at_once_both_succeed(
    tmp_path: Path,
) -> None:
    """Two processes opening a new SQLite registry at the same instant both switch it to WAL
    (SQLite refuses one of them at once, without waiting, unless the switch is retried)."""
    ctx = mp.get_context("fork")
    failures = []
    for trial in range(40):  # the race is lost in about a third of the trials without the retry
        url = f"sqlite:///{tmp_path}/trial{trial}.db"
        barrier, results = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_connect_worker, args=(url, barrier, results)) for _ in "ab"]
        for proc in procs:
            proc.start()
        outcomes = [results.get(timeout=TIMEOUT_S) for _ in procs]
        for proc in procs:
            proc.join(TIMEOUT_S)
        failures += [o for o in outcomes if o != "ok"]
    assert failures == []
