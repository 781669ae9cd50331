"""Bearer-token check and request-body bound (SPEC §9)."""

from __future__ import annotations

import hmac
import json

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException
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
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        body = json.dumps(
            {"error": "LimitError", "message": BodyTooLarge(self.max_bytes).detail}
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


class BodyTooLarge(HTTPException):
    """Raised while an undeclared-length body is read past the limit; an HTTPException so that
    the body parser passes it on (answered 413 ``LimitError``)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body exceeds the limit of {max_bytes} bytes")
