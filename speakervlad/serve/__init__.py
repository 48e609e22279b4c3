"""HTTP service over a :class:`~speakervlad.verification.verifier.Verifier` (FastAPI; OpenAPI at
``/openapi.json``, docs at ``/docs``).

Voiceprints are biometric data, so every operation except ``/health`` (and the
API docs) needs the API key, as ``Authorization: Bearer KEY`` or ``X-API-Key:
KEY``, compared in constant time *before* the request body is read
(:mod:`.auth`). Uploads over ``max_upload_bytes`` and audio over ``max_seconds``
get 413. Every error is ``{"error": code, "detail": text}`` with a code from
:class:`~.http_errors.ErrorCode`; the schema declares, per operation, each status
it can answer (:mod:`.contract`, :mod:`.app`).

Endpoints are plain ``def``: FastAPI runs them in its threadpool, so model
inference never blocks the event loop.
"""
from .app import create_app
from .auth import API_KEY_ENV, load_api_key
from .http_errors import ErrorCode

__all__ = ["API_KEY_ENV", "ErrorCode", "create_app", "load_api_key"]
