"""``create_app(settings)``: the FastAPI application of the service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from loguru import logger
from starlette.exceptions import HTTPException as StarletteHTTPException

from forex_diffusion import __version__
from forex_diffusion.errors import (
    AuthError,
    BusyError,
    CheckpointError,
    ConfigError,
    ForexDiffusionError,
    JobError,
    LimitError,
    NotFoundError,
    RegistryError,
)
from forex_diffusion.service import config_routes, data_routes, ensemble_routes, ui_job_routes
from forex_diffusion.service.auth import BodyLimitMiddleware, require_token
from forex_diffusion.service.routes import router
from forex_diffusion.service.settings import ServiceSettings
from forex_diffusion.service.state import ServiceState
from forex_diffusion.ui import install_ui

STATUS: list[tuple[type[ForexDiffusionError], int]] = [
    (AuthError, 401),
    (NotFoundError, 404),
    (JobError, 409),
    (CheckpointError, 409),
    (LimitError, 413),
    (BusyError, 429),
    (RegistryError, 503),
]


def status_of(exc: ForexDiffusionError) -> int:
    """HTTP status of a package error (DataError, ConfigError and the rest: 422)."""
    for cls, code in STATUS:
        if isinstance(exc, cls):
            return code
    return 422


def _error(code: int, name: str, message: str, details: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"error": name, "message": message}
    if details is not None:
        body["details"] = details
    headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
    return JSONResponse(body, status_code=code, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ForexDiffusionError)
    async def package_error(request: Request, exc: ForexDiffusionError) -> JSONResponse:
        return _error(status_of(exc), type(exc).__name__, str(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": str(e.get("msg")),
                "type": e.get("type"),
            }
            for e in exc.errors()
        ]
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        where = ".".join(first["loc"])
        return _error(
            422,
            "RequestValidationError",
            f"{where}: {first['msg']}" if where else str(first["msg"]),
            details,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        names = {404: "NotFoundError", 405: "MethodNotAllowed", 413: "LimitError"}
        return _error(exc.status_code, names.get(exc.status_code, "HTTPError"), str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.opt(exception=exc).error(f"{request.method} {request.url.path} failed")
        return _error(500, "InternalError", "internal error; the server log has the details")


def create_app(settings: ServiceSettings) -> FastAPI:
    """The service for ``settings`` (checked: an exposed host needs a token).

    Endpoints: ``/health`` (no token), ``/v1/...`` (see ``routes`` and the UI's
    ``config_routes``, ``data_routes``, ``ui_job_routes``), ``/openapi.json`` and ``/docs``
    (behind the token when one is set); the browser UI at ``/`` (pages load without the token,
    their API calls carry it).
    """
    settings = settings.checked()
    state = ServiceState.build(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async def refresh_jobs() -> None:
            while True:
                await asyncio.sleep(1.0)
                state.jobs.refresh()

        for asset in settings.assets:  # live from the start: model loaded, stream primed
            await state.hub.asset(asset)  # NotFoundError: no model for it
            _, error = await state.hub.on_new_bars(asset, state.last_bar(asset))
            if error is not None:
                raise ConfigError(f"cannot serve {asset} live: {error}")
        task = asyncio.create_task(refresh_jobs())
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
            await state.close()

    app = FastAPI(
        title="forex-diffusion",
        version=__version__,
        description="Probabilistic multi-horizon FX forecasts (SSSD), live on every 5m bar.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.service = state
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.limits.max_body_bytes)
    _install_error_handlers(app)

    @app.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        """Liveness (no token needed)."""
        return {"status": "ok"}

    app.include_router(router)
    app.include_router(config_routes.router)
    app.include_router(data_routes.router)
    app.include_router(ui_job_routes.router)
    app.include_router(ensemble_routes.router)
    install_ui(app)  # the browser UI at / (see forex_diffusion.ui)

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_token)])
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(require_token)])
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="forex-diffusion API")

    return app
