"""HTTP service: every endpoint through FastAPI's TestClient, bad requests, auth on and off."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from forex_diffusion.cli.main import app as cli_app
from forex_diffusion.config.sssd_config import SSSDConfig
from forex_diffusion.data.resample import resample_ohlc
from forex_diffusion.data.store import CandleStore
from forex_diffusion.errors import ConfigError, DataError, NotFoundError
from forex_diffusion.forecast import SampleForecast
from forex_diffusion.inference.sssd_inference import SSSDInferenceService
from forex_diffusion.service.app import create_app
from forex_diffusion.service.settings import Limits
from fx_test_utils import load_fx
from service_utils import STORE_END, TOKEN, settings, trained_root

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def trained(fx_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> SSSDConfig:
    return trained_root(fx_dir, tmp_path_factory.mktemp("service"))


@pytest.fixture(scope="module")
def client(trained: SSSDConfig) -> Any:
    with TestClient(create_app(settings(trained))) as c:
        yield c


def _service(client: TestClient) -> SSSDInferenceService:
    loaded = client.app.state.service.pool.loaded()  # type: ignore[attr-defined]
    assert loaded, "no model loaded yet"
    return loaded[0].service


def _rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {"timestamp": t.isoformat(), **{k: float(v) for k, v in row.items()}}
        for t, row in df[["open", "high", "low", "close", "volume"]].iterrows()
    ]


def _assert_error(response: Any, status: int, name: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == name, body
    assert "Traceback" not in response.text and 'File "' not in response.text
    return body


def _same_forecast(a: dict[str, Any], b: Any) -> None:
    for stat in ("mean", "std", "q05", "q50", "q95"):
        for h, v in getattr(b, stat).items():
            assert a[stat][str(h)] == pytest.approx(v, rel=1e-9, abs=1e-12), (stat, h)


# ---------------------------------------------------------------------- health, status, models


def test_health_status_and_models(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    client.post("/v1/predict", json={"asset": "EURUSD", "num_samples": 8, "steps": 2})
    status = client.get("/v1/status").json()
    assert status["status"] == "ok" and status["versions"]["torch"] == torch.__version__
    assert status["uptime_s"] > 0 and status["batching"] is True
    assert [(m["asset"], m["device"]) for m in status["models"]] == [("EURUSD", "cpu")]
    models = client.get("/v1/models").json()["models"]
    assert [(m["asset"], m["model_name"]) for m in models] == [("EURUSD", "sssd_cpu_small")]
    detail = client.get("/v1/models/eurusd").json()
    assert detail["asset"] == "EURUSD"
    assert detail["models"][0]["best_checkpoint"]["path"].endswith("best.ckpt")
    assert [r["status"] for r in detail["models"][0]["runs"]] == ["completed"]
    body = _assert_error(client.get("/v1/models/GBPUSD"), 404, "NotFoundError")
    assert "GBPUSD" in body["message"]
    _assert_error(client.get("/v1/nothing"), 404, "NotFoundError")
    _assert_error(client.delete("/v1/status"), 405, "MethodNotAllowed")
    schema = client.get("/openapi.json").json()
    for path in ("/v1/predict", "/v1/bars", "/v1/stream/{asset}", "/v1/jobs/{job_id}"):
        assert path in schema["paths"]
    assert "swagger" in client.get("/docs").text.lower()


# ---------------------------------------------------------------------- predict


def test_predict_from_store_equals_python_api(client: TestClient, trained: SSSDConfig) -> None:
    r = client.post("/v1/predict", json={"asset": "EURUSD", "seed": 5, "quantiles": [0.25, 0.75]})
    body = r.json()
    assert r.status_code == 200, body
    svc = _service(client)
    candles = CandleStore(Path(trained.paths.data_dir)).load("EURUSD")
    expected = svc.predict(candles, generator=torch.Generator().manual_seed(5))
    assert body["timestamp"] == expected.timestamp.isoformat() == "2019-03-18T00:00:00+00:00"
    _same_forecast(body, expected)
    assert body["num_samples"] == 16 and body["calibrated"] is False
    for h in ("5", "15", "60", "240"):
        assert body["direction"][h] == svc.get_direction(expected, int(h))
        assert body["confidence"][h] == pytest.approx(
            svc.get_directional_confidence(expected, int(h))
        )
        assert body["price_levels"]["q50"][h] == pytest.approx(
            expected.last_close + expected.q50[int(h)]
        )
        assert body["quantiles"]["q25"][h] == pytest.approx(
            float(SampleForecast.of(expected.samples[int(h)]).quantile(0.25))
        )
        assert body["mean_pips"][h] == pytest.approx(expected.mean[int(h)] / 1e-4)


def test_predict_asof_and_candles_in_body(client: TestClient, trained: SSSDConfig) -> None:
    t = pd.Timestamp("2019-03-14 10:35", tz="UTC")
    store_based = client.post(
        "/v1/predict", json={"asset": "EURUSD", "asof": "2019-03-14T10:37:00Z", "seed": 2}
    ).json()
    assert store_based["timestamp"] == t.isoformat()
    svc = _service(client)
    candles = CandleStore(Path(trained.paths.data_dir)).load("EURUSD", end=t)
    five = resample_ohlc(candles, "5m", base_timeframe="1m")
    five = five[five.index >= t - svc.history_span]
    r = client.post(
        "/v1/predict",
        json={"asset": "EURUSD", "candles": _rows(five), "seed": 2, "include_samples": True},
    )
    body = r.json()
    assert r.status_code == 200, body
    expected = svc.predict(five, generator=torch.Generator().manual_seed(2))
    assert body["timestamp"] == t.isoformat()
    _same_forecast(body, expected)
    assert np.allclose(body["samples"]["60"], expected.samples[60])
    # the store-based forecast used 1m candles, so it is the Python API's on 1m candles
    _same_forecast(store_based, svc.predict(candles, generator=torch.Generator().manual_seed(2)))


def test_bad_predict_requests_are_named_4xx(client: TestClient, trained: SSSDConfig) -> None:
    svc = _service(client)
    candles = CandleStore(Path(trained.paths.data_dir)).load(
        "EURUSD", start="2019-03-14 00:00", end="2019-03-14 02:00"
    )
    rows = _rows(candles)
    # the same messages as the Python API
    with pytest.raises(DataError) as short:
        svc.predict(candles)
    body = _assert_error(
        client.post("/v1/predict", json={"asset": "EURUSD", "candles": rows}), 422, "DataError"
    )
    assert body["message"] == str(short.value) and "too little history" in body["message"]
    bad = [dict(r) for r in rows]
    bad[7]["low"] = -1.0
    with pytest.raises(DataError) as negative:
        svc.predict(pd.DataFrame(bad).set_index(pd.to_datetime([r["timestamp"] for r in bad])))
    body = _assert_error(
        client.post("/v1/predict", json={"asset": "EURUSD", "candles": bad}), 422, "DataError"
    )
    assert "non-positive prices" in body["message"] and "2019-03-14 00:07" in body["message"]
    assert body["message"].split(":", 1)[1] == str(negative.value).split(":", 1)[1]
    body = _assert_error(
        client.post("/v1/predict", json={"asset": "EURUSD", "candles": rows[::-1]}),
        422,
        "DataError",
    )
    assert "not sorted" in body["message"]
    cases = [
        ({"asset": "GBPUSD"}, 404, "NotFoundError"),
        ({"asset": "EURUSD", "model": "nope"}, 404, "NotFoundError"),
        ({"asset": "EURUSD", "num_samples": 5000}, 413, "LimitError"),
        ({"asset": "EURUSD", "steps": 1000}, 413, "LimitError"),
        ({"asset": "EURUSD", "num_samples": 1}, 422, "RequestValidationError"),
        ({"asset": "EURUSD", "sampler": "euler"}, 422, "RequestValidationError"),
        ({"asset": "EURUSD", "quantiles": [1.5]}, 422, "RequestValidationError"),
        ({"asset": "EURUSD", "eta": 2}, 422, "RequestValidationError"),
        ({"asset": "EURUSD", "colour": "red"}, 422, "RequestValidationError"),
        ({"asset": "../etc"}, 422, "RequestValidationError"),
        ({"asset": "EURUSD", "asof": "2019-03-14T10:00:00"}, 422, "RequestValidationError"),
        ({"asset": "EURUSD", "asof": "2001-01-01T00:00:00Z"}, 422, "DataError"),
        (
            {"asset": "EURUSD", "candles": [{**rows[0], "timestamp": "2019-03-14 00:00"}]},
            422,
            "RequestValidationError",
        ),
    ]
    for payload, status, name in cases:
        _assert_error(client.post("/v1/predict", json=payload), status, name)
    body = _assert_error(
        client.post(
            "/v1/predict", content=b"{not json", headers={"content-type": "application/json"}
        ),
        422,
        "RequestValidationError",
    )
    assert body["details"]


def test_request_bounds(trained: SSSDConfig) -> None:
    limits = Limits(max_body_bytes=20_000, max_candles=50)
    with TestClient(create_app(settings(trained, limits=limits))) as c:
        rows = _rows(CandleStore(Path(trained.paths.data_dir)).load("EURUSD", end="2019-01-03"))
        body = _assert_error(
            c.post("/v1/predict", json={"asset": "EURUSD", "candles": rows[:60]}),
            413,
            "LimitError",
        )
        assert "60 candles" in body["message"] and "50" in body["message"]
        big = json.dumps({"asset": "EURUSD", "candles": rows[:400]}).encode()
        assert len(big) > 20_000
        _assert_error(
            c.post("/v1/bars", content=big, headers={"content-type": "application/json"}),
            413,
            "LimitError",
        )

        def chunks() -> Any:  # no Content-Length: counted while read
            yield from (big[i : i + 4096] for i in range(0, len(big), 4096))

        _assert_error(
            c.post("/v1/bars", content=chunks(), headers={"content-type": "application/json"}),
            413,
            "LimitError",
        )


def test_dynamic_batching_coalesces_and_keeps_requests_apart(trained: SSSDConfig) -> None:
    cfg = settings(trained, batching={"max_batch": 16, "max_wait_ms": 200.0})
    with TestClient(create_app(cfg)) as c:
        c.post("/v1/predict", json={"asset": "EURUSD", "num_samples": 8})  # load the model
        batcher = c.app.state.service.batcher  # type: ignore[attr-defined]
        batches_before, items_before = batcher.batches, batcher.items
        times = [
            pd.Timestamp("2019-03-13 09:00", tz="UTC") + pd.Timedelta(minutes=5 * k)
            for k in range(8)
        ]
        out: dict[int, dict[str, Any]] = {}
        barrier = threading.Barrier(len(times))

        def call(k: int) -> None:
            barrier.wait()
            out[k] = c.post(
                "/v1/predict",
                json={"asset": "EURUSD", "asof": times[k].isoformat(), "num_samples": 8},
            ).json()

        threads = [threading.Thread(target=call, args=(k,)) for k in range(len(times))]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert [out[k]["timestamp"] for k in range(len(times))] == [t.isoformat() for t in times]
        assert batcher.items - items_before == len(times)
        assert batcher.batches - batches_before < len(times)  # coalesced


def test_store_forecasts_share_prepared_features_and_equal_uncached_ones(
    fx_dir: Path, trained: SSSDConfig, tmp_path: Path
) -> None:
    """Store-based forecasts reuse the prepared features of an earlier request for the same
    decision while the asset's bars are unchanged (concurrent requests build them once); the
    forecast is the Python API's on the stored candles, cached or not, before and after bars
    are appended."""
    data_dir = tmp_path / "data"
    store = CandleStore(data_dir)
    store.write("EURUSD", load_fx(fx_dir, "2019-02-10", STORE_END), source="t")
    week = load_fx(fx_dir, STORE_END, "2019-03-19")
    asof = pd.Timestamp("2019-03-15 14:07", tz="UTC")
    with TestClient(create_app(settings(trained, data_dir=data_dir))) as c:
        body = {"asset": "EURUSD", "asof": asof.isoformat(), "seed": 4}
        first = c.post("/v1/predict", json=body).json()
        svc = _service(c)
        cache = c.app.state.service.datasets  # type: ignore[attr-defined]
        misses, hits = cache.misses, cache.hits
        second = c.post("/v1/predict", json=body).json()
        assert (cache.misses, cache.hits) == (misses, hits + 1)
        expected = svc.predict(
            store.load("EURUSD", end=asof), generator=torch.Generator().manual_seed(4)
        )
        assert first["timestamp"] == second["timestamp"] == "2019-03-15T14:05:00+00:00"
        _same_forecast(first, expected)
        _same_forecast(second, expected)
        # concurrent batched requests for the latest forecast: the features are built once
        misses = cache.misses
        out: list[dict[str, Any]] = []
        barrier = threading.Barrier(6)

        def call() -> None:
            barrier.wait()
            out.append(c.post("/v1/predict", json={"asset": "EURUSD", "num_samples": 8}).json())

        threads = [threading.Thread(target=call) for _ in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert [o["timestamp"] for o in out] == ["2019-03-18T00:00:00+00:00"] * 6
        assert cache.misses == misses + 1
        # appending bars changes the store's version: the next forecast sees them
        posted = c.post("/v1/bars", json={"asset": "EURUSD", "candles": _rows(week.iloc[:12])})
        assert posted.status_code == 200, posted.text
        latest = c.post("/v1/predict", json={"asset": "EURUSD", "seed": 9}).json()
        assert latest["timestamp"] == "2019-03-18T00:10:00+00:00"
        assert cache.misses == misses + 2
        _same_forecast(
            latest,
            svc.predict(store.load("EURUSD"), generator=torch.Generator().manual_seed(9)),
        )


# ---------------------------------------------------------------------- bars, stream


def test_bars_are_validated_atomic_and_idempotent(
    fx_dir: Path, trained: SSSDConfig, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    CandleStore(data_dir).write("EURUSD", load_fx(fx_dir, "2019-02-20", STORE_END), source="t")
    week = load_fx(fx_dir, STORE_END, "2019-03-19")
    with TestClient(create_app(settings(trained, data_dir=data_dir))) as c:
        first = c.post("/v1/bars", json={"asset": "EURUSD", "candles": _rows(week.iloc[:10])})
        body = first.json()
        assert first.status_code == 200, body
        assert body["rows_added"] == 10 and body["last_bar"] == week.index[9].isoformat()
        # 2019-03-18 00:05 and 00:10 closed: the first live forecast is the latest
        assert [f["timestamp"] for f in body["forecasts"]] == ["2019-03-18T00:10:00+00:00"]
        assert body["forecasts"][0]["live"] is True and body["forecasts"][0]["reprimed"] is True
        again = c.post("/v1/bars", json={"asset": "EURUSD", "candles": _rows(week.iloc[:10])})
        assert again.json()["rows_added"] == 0 and again.json()["already_stored"] == 10
        assert again.json()["forecasts"] == []
        stored = CandleStore(data_dir).info("EURUSD").bars
        bad = _rows(week.iloc[10:20])
        bad[5]["high"] = bad[5]["low"] - 0.01
        body = _assert_error(
            c.post("/v1/bars", json={"asset": "EURUSD", "candles": bad}), 422, "DataError"
        )
        assert "inconsistent OHLC" in body["message"] and "bars for EURUSD" in body["message"]
        assert CandleStore(data_dir).info("EURUSD").bars == stored  # nothing written
        odd = _rows(week.iloc[10:12])
        odd[1]["timestamp"] = (week.index[11] + pd.Timedelta(seconds=30)).isoformat()
        body = _assert_error(
            c.post("/v1/bars", json={"asset": "EURUSD", "candles": odd}), 422, "DataError"
        )
        assert CandleStore(data_dir).info("EURUSD").bars == stored
        _assert_error(
            c.post("/v1/bars", json={"asset": "EURUSD", "candles": []}),
            422,
            "RequestValidationError",
        )
        # an asset without a model is stored, with no live forecast
        other = c.post("/v1/bars", json={"asset": "GBPUSD", "candles": _rows(week.iloc[:10])})
        assert other.status_code == 200 and other.json()["forecasts"] == []


def test_bars_without_enough_history_are_stored_and_say_why(
    fx_dir: Path, trained: SSSDConfig, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    day = load_fx(fx_dir, "2019-03-14", "2019-03-15")
    with TestClient(create_app(settings(trained, data_dir=data_dir))) as c:
        r = c.post("/v1/bars", json={"asset": "EURUSD", "candles": _rows(day.iloc[:600])})
        body = r.json()
        assert r.status_code == 200 and body["rows_added"] == 600 and body["forecasts"] == []
        assert body["live_error"].startswith("DataError: too little history")
        assert CandleStore(data_dir).info("EURUSD").bars == 600


def test_stream_pushes_the_forecast_of_each_new_bar(
    fx_dir: Path, trained: SSSDConfig, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    CandleStore(data_dir).write("EURUSD", load_fx(fx_dir, "2019-02-20", STORE_END), source="t")
    week = load_fx(fx_dir, STORE_END, "2019-03-19")
    with TestClient(create_app(settings(trained, data_dir=data_dir))) as c:
        _assert_error(c.get("/v1/stream/GBPUSD?max_events=1"), 404, "NotFoundError")
        lines: list[str] = []

        def listen() -> None:
            with c.stream("GET", "/v1/stream/EURUSD?max_events=3") as r:
                assert r.headers["content-type"].startswith("text/event-stream")
                lines.extend(r.iter_lines())

        listener = threading.Thread(target=listen)
        listener.start()
        hub = c.app.state.service.hub  # type: ignore[attr-defined]
        for _ in range(200):
            if "EURUSD" in hub.assets and hub.assets["EURUSD"].subscribers:
                break
            threading.Event().wait(0.05)
        posted = []
        for k in range(0, 20, 5):  # 00:00-00:04, 00:05-00:09, ...: a 5m close per post
            posted += c.post(
                "/v1/bars", json={"asset": "EURUSD", "candles": _rows(week.iloc[k : k + 5])}
            ).json()["forecasts"]
        listener.join(timeout=120)
        assert not listener.is_alive()
        events = [json.loads(ln[len("data: ") :]) for ln in lines if ln.startswith("data: ")]
        assert [e["timestamp"] for e in events] == [p["timestamp"] for p in posted[:3]]
        assert events == posted[:3]
        assert [e["reprimed"] for e in events] == [True, False, False]
        assert events[2]["bars_since_prime"] == {"5m": 2, "15m": 1, "1h": 0, "4h": 0}
        status = c.get("/v1/status").json()
        assert status["assets"][0]["last_decision"] == posted[-1]["timestamp"]


def test_all_tensor_work_runs_on_the_service_torch_thread(
    fx_dir: Path, trained: SSSDConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Model loads, feature builds, batched, seeded and body-candle forecasts and the live
    state's features and model work all run on the one ``TorchThread`` (a second thread
    running PyTorch operators gets an OpenMP team of its own, which slows the service's small
    operators), including requests that arrive together."""
    import forex_diffusion.service.pool as pool_module
    from forex_diffusion.service.live import LiveAsset

    seen: list[tuple[str, str]] = []

    def spy(owner: Any, name: str) -> None:
        original = getattr(owner, name)

        def recorded(*args: Any, **kwargs: Any) -> Any:
            seen.append((name, threading.current_thread().name))
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, recorded)

    spy(pool_module, "load_sssd_inference_service")
    for name in ("build_features", "_predict_many", "predict", "predict_from_context"):
        spy(SSSDInferenceService, name)
    spy(LiveAsset, "plan")
    spy(LiveAsset, "forecast")
    data_dir = tmp_path / "data"
    CandleStore(data_dir).write("EURUSD", load_fx(fx_dir, "2019-01-01", STORE_END), source="t")
    week = load_fx(fx_dir, STORE_END, "2019-03-19")
    candles = _rows(resample_ohlc(load_fx(fx_dir, "2019-01-01", "2019-03-14"), "5m"))
    bodies: list[dict[str, Any]] = [
        {"asset": "EURUSD", "num_samples": 8},  # batched, store
        {"asset": "EURUSD", "num_samples": 8, "seed": 1},  # alone, store
        {"asset": "EURUSD", "num_samples": 8, "asof": "2019-03-12T10:00Z"},  # batched, asof
        {"asset": "EURUSD", "num_samples": 8, "candles": candles},  # batched, body
        {"asset": "EURUSD", "num_samples": 8, "candles": candles, "seed": 2},  # alone, body
    ]
    with TestClient(create_app(settings(trained, data_dir=data_dir))) as c:
        codes: list[int] = []
        barrier = threading.Barrier(len(bodies) + 1)

        def call(body: dict[str, Any]) -> None:
            barrier.wait()
            r = c.post("/v1/predict", json=body)
            codes.append(r.status_code)
            assert r.status_code == 200, r.text[:300]

        def bars() -> None:
            barrier.wait()
            for k in range(0, 15, 5):
                r = c.post("/v1/bars", json={"asset": "EURUSD", "candles": _rows(week[k : k + 5])})
                codes.append(r.status_code)
                assert r.json()["forecasts"], r.text

        threads = [threading.Thread(target=call, args=(b,)) for b in bodies]
        threads.append(threading.Thread(target=bars))
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        torch_thread = c.app.state.service.torch_thread  # type: ignore[attr-defined]
    assert codes == [200] * (len(bodies) + 3)
    assert {name for name, _ in seen} == {
        "load_sssd_inference_service",
        "build_features",
        "_predict_many",
        "predict",
        "predict_from_context",
        "plan",
        "forecast",
    }
    threads_used = {thread for _, thread in seen}
    assert len(threads_used) == 1, seen
    assert threads_used.pop().startswith(torch_thread.name)


# ---------------------------------------------------------------------- jobs (requests only)


def test_job_requests_are_checked(client: TestClient) -> None:
    assert client.get("/v1/jobs").json() == {"jobs": []}
    _assert_error(client.get("/v1/jobs/abc123"), 404, "NotFoundError")
    _assert_error(client.delete("/v1/jobs/abc123"), 404, "NotFoundError")
    _assert_error(client.get("/v1/jobs/NOT-AN-ID"), 422, "RequestValidationError")
    body = _assert_error(
        client.post(
            "/v1/jobs/train", json={"asset": "EURUSD", "overrides": ["paths.data_dir=/etc"]}
        ),
        422,
        "ConfigError",
    )
    assert "paths" in body["message"]
    body = _assert_error(
        client.post("/v1/jobs/train", json={"asset": "EURUSD", "overrides": ["training.epoks=3"]}),
        422,
        "ConfigError",
    )
    assert "epoks" in body["message"]
    _assert_error(
        client.post(
            "/v1/jobs/evaluate",
            json={"asset": "EURUSD", "start": "2019-03-10", "end": "2019-03-01"},
        ),
        422,
        "ConfigError",
    )
    assert client.get("/v1/jobs").json() == {"jobs": []}


# ---------------------------------------------------------------------- auth, exposure


def test_token_guards_everything_but_health(trained: SSSDConfig) -> None:
    with TestClient(create_app(settings(trained, token=TOKEN))) as c:
        assert c.get("/health").status_code == 200
        for method, path in [
            ("GET", "/v1/status"),
            ("GET", "/v1/models"),
            ("GET", "/v1/models/EURUSD"),
            ("POST", "/v1/predict"),
            ("POST", "/v1/bars"),
            ("GET", "/v1/stream/EURUSD"),
            ("GET", "/v1/jobs"),
            ("POST", "/v1/jobs/train"),
            ("GET", "/openapi.json"),
            ("GET", "/docs"),
        ]:
            r = c.request(method, path, json={"asset": "EURUSD"})
            _assert_error(r, 401, "AuthError")
            assert r.headers["www-authenticate"] == "Bearer"
            wrong = c.request(method, path, headers={"Authorization": "Bearer nope"})
            _assert_error(wrong, 401, "AuthError")
        ok = {"Authorization": f"Bearer {TOKEN}"}
        assert c.get("/v1/status", headers=ok).status_code == 200
        assert c.get("/openapi.json", headers=ok).status_code == 200
        r = c.post("/v1/predict", headers=ok, json={"asset": "EURUSD", "num_samples": 4})
        assert r.status_code == 200, r.text


def test_exposed_host_needs_a_token(trained: SSSDConfig) -> None:
    with pytest.raises(ConfigError, match="without a token"):
        create_app(settings(trained, host="0.0.0.0"))
    with pytest.raises(ConfigError, match="at least 16"):
        create_app(settings(trained, host="0.0.0.0", token="short"))
    assert create_app(settings(trained, host="0.0.0.0", token=TOKEN)) is not None
    assert create_app(settings(trained, host="::1")) is not None
    result = CliRunner().invoke(
        cli_app, ["serve", "--host", "192.168.1.10", "--token-env", "FD_TEST_NO_SUCH_VAR"]
    )
    assert result.exit_code == 2 and "without a token" in result.output


def test_assets_given_at_startup_are_live_from_the_start(trained: SSSDConfig) -> None:
    with TestClient(create_app(settings(trained, assets=("EURUSD",)))) as c:
        (asset,) = c.get("/v1/status").json()["assets"]
        assert asset["asset"] == "EURUSD" and asset["last_decision"] == "2019-03-18T00:00:00+00:00"
        assert asset["last_bar"] == "2019-03-17T23:59:00+00:00"
    gbp = create_app(settings(trained, assets=("GBPUSD",)))
    with pytest.raises(NotFoundError, match=r"no checkpoint for asset 'GBPUSD'"), TestClient(gbp):
        pass
