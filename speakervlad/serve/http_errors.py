"""The service's one error model: every error answer is ``{"error": code, "detail": text}``.

:class:`ErrorCode` is the list of codes, each with its HTTP status, its meaning and
the headers it carries. The handlers answer through it and the OpenAPI schema is
written from it (:func:`documented`), so a new code is one member here plus the
operations that can answer it.

>>> ErrorCode.UNKNOWN_SPEAKER.status, ErrorCode("too_long").status
(404, 413)
>>> sorted(documented(ErrorCode.TOO_LARGE, ErrorCode.TOO_LONG, ErrorCode.UNAUTHORIZED))
[401, 413]
"""
from __future__ import annotations

import logging
from enum import Enum
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (
    AudioError,
    EmbeddingError,
    InsufficientSpeechError,
    SpeakerVladError,
    StoreError,
    StoreUnavailableError,
    UnknownSpeakerError,
)

logger = logging.getLogger(__name__)


class ErrorCode(str, Enum):
    """What went wrong: the `error` field of every error answer."""

    status: int
    meaning: str
    headers: dict[str, str]

    def __new__(cls, code: str, status: int, meaning: str, headers: dict[str, str] | None = None) -> ErrorCode:
        member = str.__new__(cls, code)
        member._value_ = code
        member.status, member.meaning, member.headers = status, meaning, headers or {}
        return member

    BAD_REQUEST = "bad_request", 400, "the request body is malformed (e.g. broken multipart data)"
    BAD_AUDIO = "bad_audio", 400, "a recording cannot be used: corrupt, empty, silent or in an unknown format"
    UNAUTHORIZED = ("unauthorized", 401, "missing or wrong API key",
                    {"WWW-Authenticate": "Bearer"})
    UNKNOWN_SPEAKER = "unknown_speaker", 404, "the speaker is not enrolled"
    NOT_FOUND = "not_found", 404, "no such path"
    METHOD_NOT_ALLOWED = "method_not_allowed", 405, "the path does not take this method (see the Allow header)"
    STORE_CONFLICT = ("store_conflict", 409, "the speaker was enrolled with another model: re-enroll them "
                      "(enroll with replace=true)")
    TOO_LARGE = "too_large", 413, "the request body is larger than the server's upload limit"
    TOO_LONG = "too_long", 413, "a recording is longer than the server's duration limit"
    INVALID_SPEAKER_ID = "invalid_speaker_id", 422, "the speaker id breaks the id rule (or is the reserved 'unknown')"
    INVALID_REQUEST = "invalid_request", 422, "a parameter or form field is missing or invalid"
    INSUFFICIENT_SPEECH = ("insufficient_speech", 422, "a recording holds too little speech (as the voice activity "
                           "detector finds it) for the operation; nothing was stored: send one with more speech")
    INTERNAL_ERROR = "internal_error", 500, "a bug in the server (see its log)"
    STORE_UNAVAILABLE = ("store_unavailable", 503, "the enrollment store is locked or failing; nothing was "
                         "changed: send the same request again after Retry-After seconds",
                         {"Retry-After": "1"})


class ErrorBody(BaseModel):
    """Every error answer of the service."""

    error: ErrorCode = Field(description="what went wrong: " + "; ".join(
        f"`{code.value}` ({code.status}) {code.meaning}" for code in ErrorCode))
    detail: str = Field(description="what to do about it, in words")


class ClientError(Exception):
    """A request the client must fix; answered as ``code`` with ``detail``."""

    def __init__(self, code: ErrorCode, detail: str):
        super().__init__(detail)
        self.code, self.detail = code, detail


def error_response(code: ErrorCode, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(ErrorBody(error=code, detail=detail).model_dump(mode="json"), status_code=code.status,
                        headers={**code.headers, **(headers or {})} or None)


#: library exceptions, most specific first
LIBRARY_ERRORS: tuple[tuple[type[SpeakerVladError], ErrorCode], ...] = (
    (UnknownSpeakerError, ErrorCode.UNKNOWN_SPEAKER),
    (InsufficientSpeechError, ErrorCode.INSUFFICIENT_SPEECH),  # an AudioError the client fixes with more speech
    (AudioError, ErrorCode.BAD_AUDIO),
    (EmbeddingError, ErrorCode.BAD_AUDIO),
    (StoreUnavailableError, ErrorCode.STORE_UNAVAILABLE),  # locked, disk full: retry later
    (StoreError, ErrorCode.STORE_CONFLICT),  # e.g. enrolled with another model
    (SpeakerVladError, ErrorCode.BAD_REQUEST),
)
#: what the framework raises itself: broken multipart bodies, unknown paths and methods
FRAMEWORK_ERRORS = {400: ErrorCode.BAD_REQUEST, 404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED}


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error, expected or not, with an :class:`ErrorBody`."""

    @app.exception_handler(ClientError)
    async def client_error(_: Request, err: ClientError) -> JSONResponse:
        return error_response(err.code, err.detail)

    @app.exception_handler(SpeakerVladError)
    async def library_error(_: Request, err: SpeakerVladError) -> JSONResponse:
        return error_response(next(code for kind, code in LIBRARY_ERRORS if isinstance(err, kind)), str(err))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        return error_response(ErrorCode.INVALID_REQUEST, problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, err: StarletteHTTPException) -> JSONResponse:
        code = FRAMEWORK_ERRORS.get(err.status_code, ErrorCode.BAD_REQUEST)
        return error_response(code, str(err.detail), headers=err.headers)

    @app.exception_handler(Exception)
    async def internal(_: Request, err: Exception) -> JSONResponse:
        logger.exception("internal error")
        return error_response(ErrorCode.INTERNAL_ERROR, "internal server error (see the server log)")


def documented(*codes: ErrorCode) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of an operation that can answer ``codes``, one per status."""
    by_status: dict[int, list[ErrorCode]] = {}
    for code in codes:
        by_status.setdefault(code.status, []).append(code)
    responses: dict[int | str, dict[str, Any]] = {}
    for status, group in sorted(by_status.items()):
        headers = {name: {"description": f"{value} (with `{code.value}`)", "schema": {"type": "string"},
                          "required": len(group) == 1}
                   for code in group for name, value in code.headers.items()}
        responses[status] = {
            "model": ErrorBody,
            "description": "; ".join(f"`{code.value}`: {code.meaning}" for code in group),
            **({"headers": headers} if headers else {}),
        }
    return responses
