"""The API key: where the server gets it, how :class:`Guard` checks it, how the schema declares it.

Clients send the key as ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``
(:data:`SECURITY_SCHEMES`, either one). :class:`Guard` compares it in constant
time and enforces the upload limit *before* the request body is read.
"""
from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.responses import JSONResponse

from ..errors import ConfigError
from .http_errors import ErrorCode, error_response

logger = logging.getLogger(__name__)

API_KEY_ENV = "SPEAKERVLAD_API_KEY"
MIN_KEY_CHARS = 16
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
#: answered without the key
PUBLIC_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
#: the OpenAPI declaration of the two headers :class:`Guard` accepts
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer KEY"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "X-API-Key: KEY"},
}
#: either scheme is enough
SECURITY = [{name: []} for name in SECURITY_SCHEMES]

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _BodyTooLarge(Exception):
    pass


class Guard:
    """ASGI middleware: API key check and upload size limit, before any body is read."""

    def __init__(self, app: Callable, api_key: str | None, max_body_bytes: int):
        self.app = app
        self.api_key = api_key.encode() if api_key is not None else None
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v for k, v in scope["headers"]}
        if self.api_key is not None and scope["path"] not in PUBLIC_PATHS and not self._authorised(headers):
            await error_response(
                ErrorCode.UNAUTHORIZED,
                "missing or wrong API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
            )(scope, receive, send)
            return
        declared = headers.get("content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_body_bytes:
            await self._too_large()(scope, receive, send)
            return
        await self._limited(scope, receive, send)

    def _authorised(self, headers: dict[str, bytes]) -> bool:
        assert self.api_key is not None
        bearer = headers.get("authorization", b"")
        candidates = [headers.get("x-api-key", b"")]
        if bearer[:7].lower() == b"bearer ":
            candidates.append(bearer[7:].strip())
        # evaluate both comparisons: the time taken says nothing about which header matched
        return any([hmac.compare_digest(c, self.api_key) for c in candidates])

    def _too_large(self) -> JSONResponse:
        mb = self.max_body_bytes / 2**20
        return error_response(ErrorCode.TOO_LARGE, f"upload larger than the server's limit of {mb:g} MB")

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count body bytes as they arrive (chunked uploads declare no length)."""
        state = {"received": 0, "exceeded": False, "started": False}

        async def counted_receive() -> Message:
            message = await receive()
            state["received"] += len(message.get("body", b""))
            if state["received"] > self.max_body_bytes:
                state["exceeded"] = True
                raise _BodyTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            if state["exceeded"]:
                return  # the app's answer to a truncated body is replaced by 413 below
            state["started"] = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except _BodyTooLarge:
            pass
        if state["exceeded"] and not state["started"]:
            await self._too_large()(scope, receive, send)


def load_api_key(key_file: str | None, environ: dict[str, str], insecure_no_auth: bool, host: str) -> str | None:
    """The API key from ``key_file`` or ``$SPEAKERVLAD_API_KEY``; None only when auth is off.

    Refuses to run without a key unless ``insecure_no_auth``, and refuses
    ``insecure_no_auth`` on anything but a loopback address.
    """
    if insecure_no_auth:
        if host not in LOOPBACK_HOSTS:
            raise ConfigError(f"refusing to serve without authentication on {host}: "
                              "--insecure-no-auth is only allowed on 127.0.0.1 / ::1")
        logger.warning("serving WITHOUT authentication (--insecure-no-auth): anyone on this machine "
                       "can read and change the enrolled voiceprints")
        return None
    if key_file is not None:
        try:
            with open(key_file, encoding="utf-8") as handle:
                key = handle.read().strip()
        except OSError as err:
            raise ConfigError(f"cannot read the API key file {key_file}: {err.strerror}") from None
        source = key_file
    else:
        key, source = environ.get(API_KEY_ENV, "").strip(), f"${API_KEY_ENV}"
    if not key:
        raise ConfigError(
            f"refusing to start without an API key: set {API_KEY_ENV} or pass --api-key-file FILE "
            "(or --insecure-no-auth for a local test); e.g. export "
            f"{API_KEY_ENV}=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    if len(key) < MIN_KEY_CHARS or any(ord(c) < 33 or ord(c) > 126 for c in key):
        raise ConfigError(f"the API key from {source} must be at least {MIN_KEY_CHARS} printable ASCII "
                          "characters without spaces; generate one with secrets.token_urlsafe(32)")
    return key
