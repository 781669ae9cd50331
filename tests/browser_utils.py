"""The real service in a background thread (uvicorn on 127.0.0.1, a free port) and a headless
Chromium driven by Playwright, for the browser tests of the UI."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from forex_diffusion.service.app import create_app
from forex_diffusion.service.settings import ServiceSettings

REPO_ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT_ENV = "FOREX_DIFFUSION_UI_SCREENSHOTS"
REQUIRE_ENV = "FOREX_DIFFUSION_REQUIRE_BROWSER"  # set by .ci/run: a missing browser fails


def unavailable(reason: str) -> None:
    """Skip (or, when $FOREX_DIFFUSION_REQUIRE_BROWSER is set, fail) for a missing browser."""
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{reason} (${REQUIRE_ENV} is set)")
    pytest.skip(reason)


def playwright_sync_api() -> Any:
    try:
        import playwright.sync_api
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[dev]')")
    return playwright.sync_api


def screenshot_dir() -> Path:
    """Where the browser tests save their screenshots ($FOREX_DIFFUSION_UI_SCREENSHOTS, or
    artifacts/ui-screenshots in the repository)."""
    env = os.environ.get(SCREENSHOT_ENV)
    return Path(env) if env else REPO_ROOT / "artifacts" / "ui-screenshots"


def chromium_path() -> str:
    """Debian's Chromium (Playwright's own browser download cannot work here)."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    unavailable("no chromium executable on PATH (apt-get install -y chromium)")
    raise AssertionError("unreachable")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def running_service(settings: ServiceSettings) -> Iterator[str]:
    """The service of ``settings`` served by uvicorn in a thread; yields its base URL."""
    port = free_port()
    app = create_app(settings.model_copy(update={"port": port}))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="ui-test-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the service did not start")
        time.sleep(0.05)
    assert httpx.get(f"{url}/health").status_code == 200
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(120)


@dataclass
class Console:
    """Console errors and uncaught exceptions of one page."""

    errors: list[str] = field(default_factory=list)

    def watch(self, page: Any) -> Any:
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        return page
