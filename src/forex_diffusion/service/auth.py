"""Bearer-token check and request-body bound (SPEC §9)."""

from __future__ import annotations

import hmac
import json

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from forex_diffusion.errors import AuthError

bearer = HTTPBearer(
    auto_error=False,
    description="Required on every endpoint but /health when the service has a token.",
)


def require_token(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> None:
    """FastAPI dependency: pass when no token is configured or the bearer token matches.

    Raises:
        AuthError: a token is configured and the request has none or another one.
    """
    token: str | None = request.app.state.service.settings.token
    if token is None:
        return
    if credentials is None:
        raise AuthError(
            "missing 'Authorization: Bearer <token>' header; this service needs a token"
        )
    if not hmac.compare_digest(credentials.credentials.encode(), token.encode()):
        raise AuthError("invalid bearer token")


class BodyLimitMiddleware:
    """Answers 413 ``LimitError`` to a request body over ``max_bytes`` (by its Content-Length,
    or while it is read when the length is not declared), before any handler parses it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._reject(send)
            return
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        body = json.dumps(
            {
                "error": "LimitError",
                "message": f"request body exceeds the limit of {self.max_bytes} bytes",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass
