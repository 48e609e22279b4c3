"""HTTP service over a :class:`~speakervlad.api.Verifier` (FastAPI; OpenAPI at ``/docs``).

Voiceprints are biometric data, so every endpoint except ``/health`` (and the
API docs) needs the API key, as ``Authorization: Bearer KEY`` or ``X-API-Key:
KEY``, compared in constant time *before* the request body is read. Uploads
over ``max_upload_bytes`` and audio over ``max_seconds`` get 413. Errors a
client can cause get a 4xx with a JSON body ``{"error": code, "detail": text}``.

Endpoints are plain ``def``: FastAPI runs them in its threadpool, so model
inference never blocks the event loop.
"""
from __future__ import annotations

import hmac
import json
import logging
import math
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import numpy as np
from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import __version__
from .api import Verifier
from .audio import SAMPLE_RATE
from .errors import (
    AudioError,
    CalibrationError,
    ConfigError,
    EmbeddingError,
    SpeakerVladError,
    StoreError,
    StoreUnavailableError,
    UnknownSpeakerError,
)
from .identifiers import recording_label, validate_enrollable_id, validate_speaker_id

logger = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ClientError(Exception):
    """A request the client must fix; becomes ``status`` with a JSON body."""

    def __init__(self, status: int, code: str, detail: str):
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def error_response(status: int, code: str, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


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
                401, "unauthorized",
                "missing or wrong API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                headers={"WWW-Authenticate": "Bearer"},
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
        return error_response(413, "too_large", f"upload larger than the server's limit of {mb:g} MB")

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


def create_app(verifier: Verifier, api_key: str | None, max_upload_mb: float = 20.0,
               max_seconds: float = 60.0) -> FastAPI:
    """The FastAPI app; ``api_key=None`` serves without authentication."""
    if verifier.threshold is None:
        raise CalibrationError(
            "the model is uncalibrated: start the server with --threshold T, or calibrate the "
            "model first (speakervlad calibrate)"
        )
    if verifier.store is None:
        raise StoreError("the server needs an enrollment store (--db voices.db)")
    for name, value in (("max-upload-mb", max_upload_mb), ("max-seconds", max_seconds)):
        if not math.isfinite(value) or value <= 0:
            raise ConfigError(f"--{name} must be a positive number, got {value}")
    app = FastAPI(
        title="speakervlad", version=__version__,
        description="Speaker enrollment, verification and identification. Every endpoint except "
        "/health needs the API key (Authorization: Bearer KEY or X-API-Key: KEY).",
    )
    max_samples = int(max_seconds * SAMPLE_RATE)
    _install_error_handlers(app)

    def load(upload: UploadFile) -> tuple[np.ndarray, str]:
        name = recording_label(upload.filename)
        wave = verifier.load(upload.file.read(), name=name)  # (N,) 16 kHz
        if len(wave) > max_samples:
            raise ClientError(413, "too_long", f"{name}: {len(wave) / SAMPLE_RATE:.1f} s of audio, "
                              f"the server accepts at most {max_seconds:g} s")
        return wave, name

    def speaker(speaker_id: str, new: bool = False) -> str:
        try:
            return (validate_enrollable_id if new else validate_speaker_id)(speaker_id)
        except StoreError as err:
            raise ClientError(422, "invalid_speaker_id", str(err)) from None

    @app.get("/health", summary="Liveness and model information (no key needed)")
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": app.version, "model": verifier.fingerprint[:12],
                "calibrated": verifier.calibration is not None,
                "threshold_source": verifier.threshold.source}

    @app.get("/speakers", summary="Enrolled speakers")
    def list_speakers() -> dict[str, Any]:
        return {"speakers": verifier.speakers()}

    @app.post("/speakers/{speaker_id}/enroll", summary="Enroll a speaker from one or more recordings")
    def enroll(speaker_id: str, files: list[UploadFile] = File(..., description="recordings"),
               replace: bool = Query(False, description="drop earlier recordings first")) -> dict[str, Any]:
        speaker_id = speaker(speaker_id, new=True)
        loaded = [load(f) for f in files]
        total = verifier.enroll(speaker_id, [(w, SAMPLE_RATE) for w, _ in loaded],
                                labels=[n for _, n in loaded], replace=replace)
        return {"speaker_id": speaker_id, "added": len(loaded), "recordings": total}

    @app.post("/speakers/{speaker_id}/verify", summary="Is this recording the enrolled speaker?")
    def verify(speaker_id: str, file: UploadFile = File(...)) -> dict[str, Any]:
        speaker_id = speaker(speaker_id)
        wave, _ = load(file)
        return {"speaker_id": speaker_id, **verifier.verify(speaker_id, (wave, SAMPLE_RATE)).to_dict()}

    @app.post("/identify", summary="Rank enrolled speakers; best is 'unknown' when none passes")
    def identify(file: UploadFile = File(...), top_k: int = Query(5, ge=1, le=100)) -> dict[str, Any]:
        wave, _ = load(file)
        return verifier.identify((wave, SAMPLE_RATE), top_k=top_k).to_dict()

    @app.delete("/speakers/{speaker_id}", summary="Forget a speaker and their recordings")
    def remove(speaker_id: str) -> dict[str, Any]:
        speaker_id = speaker(speaker_id)
        return {"removed": speaker_id, "recordings": verifier.remove(speaker_id)}

    app.openapi = lambda: _openapi_with_auth(app)  # type: ignore[method-assign]
    app.add_middleware(Guard, api_key=api_key, max_body_bytes=int(max_upload_mb * 2**20))
    return app


def _install_error_handlers(app: FastAPI) -> None:
    statuses: list[tuple[type[Exception], int, str]] = [
        (UnknownSpeakerError, 404, "unknown_speaker"),
        (AudioError, 400, "bad_audio"),
        (EmbeddingError, 400, "bad_audio"),
        (StoreUnavailableError, 503, "store_unavailable"),  # locked, disk full: retry later
        (StoreError, 409, "store_conflict"),  # e.g. enrolled with another model
        (SpeakerVladError, 400, "bad_request"),
    ]

    @app.exception_handler(ClientError)
    async def client_error(_: Request, err: ClientError) -> JSONResponse:
        return error_response(err.status, err.code, err.detail)

    @app.exception_handler(SpeakerVladError)
    async def library_error(_: Request, err: SpeakerVladError) -> JSONResponse:
        status, code = next((s, c) for kind, s, c in statuses if isinstance(err, kind))
        retry = {"Retry-After": "1"} if status == 503 else None
        return error_response(status, code, str(err), headers=retry)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        problems = [{"where": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in err.errors()]
        return error_response(422, "invalid_request", json.loads(json.dumps(problems, default=str)))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, err: StarletteHTTPException) -> JSONResponse:
        code = HTTPStatus(err.status_code).phrase.lower().replace(" ", "_")  # e.g. not_found
        return error_response(err.status_code, code, err.detail, headers=err.headers)

    @app.exception_handler(Exception)
    async def internal(_: Request, err: Exception) -> JSONResponse:
        logger.exception("internal error")
        return error_response(500, "internal_error", "internal server error (see the server log)")


def _openapi_with_auth(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI schema with the two API-key schemes (enforced by :class:`Guard`)."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description,
                             routes=app.routes)
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }
        schema["security"] = [{"bearer": []}, {"apiKey": []}]
        for path, operations in schema["paths"].items():
            if path in PUBLIC_PATHS:
                for operation in operations.values():
                    operation["security"] = []
        app.openapi_schema = schema
    return app.openapi_schema



API_KEY_ENV = "SPEAKERVLAD_API_KEY"
MIN_KEY_CHARS = 16
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


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
