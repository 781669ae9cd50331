"""``install_ui(app)``: the pages at ``/`` (Forecast), ``/train``, ``/models``, ``/evaluate``,
``/data`` and the static files at ``/ui/static``.

The pages carry no data: their scripts read everything from ``/v1`` with the token the user
entered (kept in the browser's session storage), so a page needs no token itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from forex_diffusion import __version__

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Page:
    path: str
    name: str
    title: str
    script: str


PAGES: tuple[Page, ...] = (
    Page("/", "forecast", "Forecast", "forecast.js"),
    Page("/train", "train", "Train", "train.js"),
    Page("/models", "models", "Models", "models.js"),
    Page("/evaluate", "evaluate", "Evaluate", "evaluate.js"),
    Page("/data", "data", "Data", "data.js"),
)


def install_ui(app: FastAPI) -> None:
    """Add the pages and ``/ui/static`` to ``app``."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.mount("/ui/static", StaticFiles(directory=str(HERE / "static")), name="ui-static")

    def add(page: Page) -> None:
        def render(request: Request) -> HTMLResponse:
            return templates.TemplateResponse(
                request,
                f"{page.name}.html",
                {"page": page, "pages": PAGES, "version": __version__},
            )

        render.__name__ = f"ui_{page.name}"
        app.add_api_route(
            page.path, render, methods=["GET"], include_in_schema=False, response_class=HTMLResponse
        )

    for page in PAGES:
        add(page)
