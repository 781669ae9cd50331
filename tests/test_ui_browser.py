"""The browser UI end to end: the real service (uvicorn) with a synthetic store, driven by
headless Chromium through Playwright. Screenshots go to artifacts/ui-screenshots/ (or
$FOREX_DIFFUSION_UI_SCREENSHOTS); the folder is printed at the start of the run."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browser_utils import (
    Console,
    chromium_path,
    playwright_sync_api,
    running_service,
    screenshot_dir,
)
from service_utils import TOKEN, settings
from ui_utils import ASSET, EVAL_END, EVAL_START, trained_synthetic

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PAGES = {
    "forecast": "/",
    "train": "/train",
    "models": "/models",
    "evaluate": "/evaluate",
    "data": "/data",
}
JOB_TIMEOUT_MS = 300_000


@pytest.fixture(scope="module")
def shots(request: pytest.FixtureRequest) -> Path:
    folder = screenshot_dir()
    folder.mkdir(parents=True, exist_ok=True)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # shown even under output capture
            reporter.write_line(f"\nUI screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ui")
    trained_synthetic(root)
    return root


@pytest.fixture(scope="module")
def service(root: Path) -> Iterator[str]:
    from ui_utils import synthetic_config

    with running_service(settings(synthetic_config(root))) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_sync_api().sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_path(), headless=True, args=["--no-sandbox"]
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


def shot(page: Any, folder: Path, name: str) -> None:
    page.wait_for_timeout(500)  # let the progress bar's transition end
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_each_page_loads_without_console_errors(service: str, browser: Any, shots: Path) -> None:
    for name, path in PAGES.items():
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        console = Console()
        console.watch(page)
        page.goto(service + path)
        page.wait_for_load_state("networkidle") if name != "forecast" else None
        if name == "forecast":  # the live stream stays open: wait for the forecast instead
            page.wait_for_selector("#forecast-table tbody tr")
        if name == "train":
            page.wait_for_selector("#device-precision")
            assert page.locator("#algorithm option").first.inner_text() == "SSSD Diffusion"
            assert page.locator('[data-path="training.epochs"]').input_value() == "1"
        if name == "models":
            page.wait_for_selector(".model h2")
        if name == "data":
            page.wait_for_selector("#assets-table tbody tr td")
            assert ASSET in page.locator("#assets-table").inner_text()
        assert page.locator("#nav-" + name).get_attribute("class") == "active"
        assert page.locator("#banner").is_hidden()
        shot(page, shots, f"page-{name}")
        assert console.errors == [], f"{name}: {console.errors}"
        context.close()


def test_a_typo_in_a_parameter_is_refused_with_its_key_path(
    service: str, page: Any, shots: Path
) -> None:
    page.goto(service + "/train")
    page.wait_for_selector('[data-path="training.epochs"]')
    page.fill("#extra", "training.epochz=3")
    page.click("#start")
    message = page.locator("#validation")
    message.wait_for(state="visible")
    assert "training.epochz: unknown key; did you mean 'training.epochs'?" in message.inner_text()
    shot(page, shots, "train-typo-refused")
    page.fill("#extra", "")
    page.fill('[data-path="training.batch_size"]', "0")
    page.click("#validate")
    page.wait_for_function(
        "document.querySelector('#validation').textContent.includes('training.batch_size')"
    )
    assert "greater than or equal to 1" in message.inner_text()
    label = page.locator('label:has([data-path="training.batch_size"])')
    assert "invalid" in (label.get_attribute("class") or "")
    shot(page, shots, "train-bad-value-refused")
    assert page.locator("#job-status").inner_text() in ("", "completed")  # nothing started


def test_a_training_job_from_the_train_page_completes_with_moving_progress(
    service: str, page: Any, shots: Path
) -> None:
    page.goto(service + "/train")
    page.wait_for_selector('[data-path="training.epochs"]')
    page.click('[data-section="model"] summary')  # a closed group: opened as a user would
    page.fill('[data-path="model.name"]', "ui_trained")
    page.fill('[data-path="training.epochs"]', "6")
    # a training phase of several of the page's polls (1 s), also on a loaded machine
    page.fill('[data-path="training.max_train_batches_per_epoch"]', "10")
    page.click("#start")
    page.wait_for_selector("#job-status.running, #job-status.queued")
    seen: list[float] = []
    reloaded = False
    deadline = time.monotonic() + JOB_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        fraction = float(page.locator("#progress-bar").get_attribute("data-fraction") or 0)
        seen.append(fraction)
        if 0 < fraction < 1 and not reloaded:  # progress survives a reload
            shot(page, shots, "train-running")
            page.reload()
            page.wait_for_selector("#job-status.running, #job-status.completed")
            reloaded = True
        if page.locator("#job-status").inner_text() in ("completed", "failed", "interrupted"):
            break
        time.sleep(0.2)
    status = page.locator("#job-status").inner_text()
    assert status == "completed", page.locator("#job-log").inner_text()
    page.wait_for_function("document.querySelector('#progress-bar').style.width === '100%'")
    assert reloaded, f"no intermediate progress seen: {seen}"
    assert any(0 < f < 1 for f in seen) and seen == sorted(seen[: seen.index(max(seen)) + 1]) + [
        max(seen)
    ] * (len(seen) - seen.index(max(seen)) - 1)
    assert page.locator("#epoch-table tbody tr").count() == 6
    assert "epoch 6 of 6 done" in page.locator("#progress-text").inner_text()
    shot(page, shots, "train-completed")
    page.goto(service + "/models")
    page.wait_for_selector(".model h2")
    assert "ui_trained" in page.locator("#models").inner_text()
    page.locator(".model", has_text="ui_trained").locator("button", has_text="Log").first.click()
    page.wait_for_function("document.querySelector('#run-log').textContent.includes('epoch 5')")
    shot(page, shots, "models-with-run-log")


def test_stop_then_resume_from_the_models_page(service: str, page: Any, shots: Path) -> None:
    page.goto(service + "/train")
    page.wait_for_selector('[data-path="training.epochs"]')
    page.click('[data-section="model"] summary')
    page.fill('[data-path="model.name"]', "ui_resumed")
    page.fill('[data-path="training.epochs"]', "12")
    page.fill('[data-path="training.max_train_batches_per_epoch"]', "3")
    page.click("#start")
    page.wait_for_function(  # a second epoch has ended, so the first one's last.ckpt exists
        # (the epoch line is logged at validation end, just before that epoch's checkpoint)
        "/epoch ([2-9]|1[01]) of 12 done/.test(document.querySelector('#progress-text').textContent)",
        timeout=JOB_TIMEOUT_MS,
    )
    page.click("#stop")
    page.wait_for_selector("#job-status.interrupted", timeout=JOB_TIMEOUT_MS)
    stopped_at = page.locator("#epoch-table tbody tr").count()
    assert stopped_at < 12
    shot(page, shots, "train-stopped")

    page.goto(service + "/models")
    card = page.locator(".model", has_text="ui_resumed")
    card.locator(".pill.interrupted").wait_for()
    card.locator("button", has_text="Resume").click()
    page.wait_for_function(
        "document.querySelector('#message').textContent.includes('Resuming run')"
    )
    shot(page, shots, "models-resume")
    page.click("#follow-resume")
    page.wait_for_selector("#job-status.completed", timeout=JOB_TIMEOUT_MS)
    assert "epoch 12 of 12 done" in page.locator("#progress-text").inner_text()
    first_resumed = page.locator("#epoch-table tbody tr td").first.inner_text()
    assert int(first_resumed) > 1  # continued, not started again from epoch 1
    shot(page, shots, "train-resumed-completed")


def test_the_stacking_ensemble_is_fitted_from_the_train_page(
    service: str, page: Any, shots: Path
) -> None:
    page.goto(service + "/train")
    page.wait_for_selector('#algorithm option[value="stacking_ensemble"]', state="attached")
    page.select_option("#algorithm", "stacking_ensemble")
    form = page.locator("#algo-params")
    form.wait_for()
    assert page.locator("#params").is_hidden()
    form.locator('[data-key="start"]').fill(EVAL_START)
    form.locator('[data-key="end"]').fill(EVAL_END)
    form.locator('[data-key="model_name"]').fill("sssd_cpu_small")
    form.locator('[data-key="n_splits"]').fill("2")
    form.locator('[data-key="num_samples"]').fill("8")
    form.locator('[data-key="name"]').fill("ui_stack")
    page.click("#start")
    page.wait_for_selector("#job-status.running, #job-status.queued")
    shot(page, shots, "train-ensemble-running")
    page.wait_for_selector("#job-status.completed, #job-status.failed", timeout=JOB_TIMEOUT_MS)
    assert page.locator("#job-status").inner_text() == "completed", page.locator(
        "#job-log"
    ).inner_text()
    assert page.locator("#progress-bar").evaluate("e => e.style.width") == "100%"
    assert "ui_stack registered" in page.locator("#job-result").inner_text()
    shot(page, shots, "train-ensemble-completed")
    page.goto(service + "/models")
    page.wait_for_selector(".model h2")
    assert "ui_stack" in page.locator("#models").inner_text()


def test_the_forecast_page_draws_the_fan_and_a_past_decision_time(
    service: str, page: Any, shots: Path
) -> None:
    console = Console()
    console.watch(page)
    page.goto(service + f"/?asset={ASSET}&model=sssd_cpu_small")
    page.wait_for_selector("#forecast-table tbody tr")
    assert page.locator("#forecast-table tbody tr").count() == 4  # horizons 5, 15, 60, 240
    counts = page.evaluate(
        "Object.fromEntries(Object.entries(state.series).map(([k, s]) => [k, s.data().length]))"
    )
    assert counts["candles"] > 100
    assert all(counts[k] == 5 for k in ("q05", "q25", "q75", "q95", "median")), counts
    band = page.evaluate(
        "state.series.q95.data().slice(1).every((p, i) => p.value > state.series.q05.data()[i + 1].value)"
    )
    assert band, "q95 must lie above q05 at every horizon"
    assert page.locator("#mode").inner_text() == "live"
    shot(page, shots, "forecast-live")
    page.fill("#asof", "2021-03-24T12:00")
    page.click("#asof-go")
    page.wait_for_function("document.querySelector('#mode').textContent === 'past decision time'")
    page.wait_for_function("state.series.real.data().length > 10")
    assert "2021-03-24 12:00" in page.locator("#decision").inner_text()
    realised = page.locator("#forecast-table tbody tr td:last-child").all_inner_texts()
    assert all(re.match(r"^\d\.\d{5} \((inside q05–q95|outside)\)$", r) for r in realised), realised
    shot(page, shots, "forecast-past-with-realised")
    assert console.errors == []


def test_the_evaluate_page_refuses_seen_ranges_and_shows_the_report(
    service: str, page: Any, shots: Path
) -> None:
    held: list[Any] = []  # the page's list of past jobs, answered only after the click:
    # on a loaded machine it comes late, and the Run button must already work by then
    jobs_list = re.compile(r".*/v1/jobs$")
    page.route(
        jobs_list,
        lambda route: held.append(route) if route.request.method == "GET" else route.continue_(),
    )
    page.goto(service + f"/evaluate?asset={ASSET}&model=sssd_cpu_small")
    page.wait_for_selector("#asset option", state="attached")
    page.fill("#start-date", "2021-02-15")  # inside the training split
    page.fill("#end-date", "2021-02-17")
    page.fill("#stride", "24")
    page.fill("#samples", "8")
    page.click("#run")
    message = page.locator("#message")
    message.wait_for(state="visible", timeout=JOB_TIMEOUT_MS)
    assert len(held) == 1
    held[0].continue_()
    page.unroute(jobs_list)
    assert "2021-02-15" in message.inner_text() or "train" in message.inner_text().lower()
    shot(page, shots, "evaluate-refused")
    page.fill("#start-date", EVAL_START)
    page.fill("#end-date", EVAL_END)
    page.click("#run")
    page.wait_for_selector("#report table", timeout=JOB_TIMEOUT_MS)
    first = page.locator("#report-body table").first
    assert "CRPS (bp)" in first.inner_text() and "(model)" in first.inner_text()
    assert page.locator("#report-body ul.verdicts li").count() >= 1
    page.wait_for_function("document.querySelectorAll('#figures img').length >= 3")
    page.wait_for_function(
        "[...document.querySelectorAll('#figures img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    assert page.locator("#progress-bar").evaluate("e => e.style.width") == "100%"
    shot(page, shots, "evaluate-report")

    # On a new visit the page restores the last run from the list of jobs; when that list comes
    # after the user has started a run, the run just started must stay the one followed.
    past = page.request.get(service + "/v1/jobs").json()  # holds the completed run above
    held.clear()
    page.route(
        jobs_list,
        lambda route: held.append(route) if route.request.method == "GET" else route.continue_(),
    )
    page.goto(service + f"/evaluate?asset={ASSET}&model=sssd_cpu_small")
    page.wait_for_selector("#asset option", state="attached")
    page.fill("#start-date", EVAL_START)
    page.fill("#end-date", EVAL_END)
    page.check("#baselines-only")
    with page.expect_response(re.compile(r".*/v1/jobs/evaluate$")) as started:
        page.click("#run")
    new_job = started.value.json()["id"]
    progress = page.locator("#progress-text")
    page.wait_for_function(
        f"document.querySelector('#progress-text').textContent.includes('Job {new_job}')"
    )
    assert len(held) == 1
    held[0].fulfill(json=past)  # the list as it was before the click: the completed run first
    page.unroute(jobs_list)
    page.wait_for_timeout(2_500)  # two polls: a page that switched jobs shows the old one by now
    assert f"Job {new_job}" in progress.inner_text(), progress.inner_text()
    page.click("#cancel")
    page.wait_for_function(
        "/cancel|completed|failed/.test(document.querySelector('#progress-text').textContent)"
    )


def test_the_data_page_imports_files_and_shows_bad_rows(
    service: str, page: Any, shots: Path, tmp_path: Path
) -> None:
    good = tmp_path / "GBPUSD_part.csv"
    rows = ["timestamp,open,high,low,close,volume"]
    rows += [f"2021-03-01 10:{m:02d}:00,1.3900,1.3905,1.3895,1.3901,10" for m in range(0, 60)]
    good.write_text("\n".join(rows) + "\n")
    bad = tmp_path / "GBPUSD_bad.csv"
    bad.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2021-03-01 11:00:00,1.3900,1.3905,1.3895,1.3901,10\n"
        "2021-03-01 11:01:00,1.3900,1.3800,1.3895,1.3901,10\n"
    )
    page.goto(service + "/data")
    page.wait_for_selector("#import-format option", state="attached")
    page.fill("#import-asset", "GBPUSD")
    page.set_input_files("#import-files", [str(good), str(bad)])
    page.click("#import-go")
    message = page.locator("#message")
    page.wait_for_function(
        "!document.querySelector('#message').textContent.startsWith('Importing')"
    )
    assert "GBPUSD_bad.csv:3" in message.inner_text(), message.inner_text()
    shot(page, shots, "data-bad-row-refused")
    page.check("#import-skip")
    page.click("#import-go")
    page.wait_for_selector("#import-report table")
    assert "61 new bars written" in message.inner_text()  # 60 + the good row of b
    assert "GBPUSD_bad.csv:3" in page.locator("#import-report").inner_text()
    page.wait_for_function("document.querySelector('#assets-table').textContent.includes('GBPUSD')")
    shot(page, shots, "data-imported")


def test_the_token_is_asked_for_and_sent(root: Path, browser: Any, shots: Path) -> None:
    from ui_utils import synthetic_config

    with running_service(settings(synthetic_config(root), token=TOKEN)) as url:
        context = browser.new_context(viewport={"width": 1400, "height": 800})
        page = context.new_page()
        page.goto(url + "/data")
        page.locator("#banner").wait_for(state="visible")
        assert "needs a token" in page.locator("#banner").inner_text()
        shot(page, shots, "token-needed")
        page.fill("#token-input", TOKEN)
        page.click("#token-save")
        page.wait_for_selector("#assets-table tbody tr td")
        assert ASSET in page.locator("#assets-table").inner_text()
        assert page.locator("#banner").is_hidden()
        shot(page, shots, "token-logged-in")
        context.close()
