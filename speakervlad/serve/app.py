"""The FastAPI app: one route per operation, each declaring every answer it can give.

Enroll and verify take ``{speaker_id:path}`` (the schema still says ``{speaker_id}``),
so an id that is empty or holds a ``/`` reaches the id check and is answered 422
``invalid_speaker_id`` like any other id that breaks the rule, instead of falling
through to a 404 for no such path. DELETE keeps the one-segment form: there
``/speakers/x/enroll`` must stay a 405 (that path takes POST), and an id with a
``/`` is a 404, which DELETE documents.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from fastapi import FastAPI, UploadFile
from fastapi.openapi.utils import get_openapi

from .. import __version__
from ..audio import SAMPLE_RATE
from ..errors import CalibrationError, ConfigError, StoreError
from ..verification.identifiers import UNKNOWN, recording_label, validate_enrollable_id, validate_speaker_id
from ..verification.verifier import Verifier
from .auth import PUBLIC_PATHS, SECURITY, SECURITY_SCHEMES, Guard
from .contract import (
    Enrolled,
    Health,
    Identified,
    NewSpeakerId,
    RecordingReport,
    Removed,
    Replace,
    SpeakerId,
    Speakers,
    TopK,
    Verified,
    audio_field,
    link,
    upload_body,
)
from .http_errors import ClientError, ErrorCode, documented, install_error_handlers

E = ErrorCode  # short, for the tables of answers below
#: what any operation behind the key can answer
GUARDED = (E.UNAUTHORIZED, E.INTERNAL_ERROR, E.STORE_UNAVAILABLE)
#: what an operation that takes recordings can answer
UPLOAD = (E.BAD_REQUEST, E.BAD_AUDIO, E.TOO_LARGE, E.TOO_LONG, E.INVALID_REQUEST, E.INSUFFICIENT_SPEECH)

#: where the links between operations take the speaker id from
SPEAKER, BEST, REMOVED = "$response.body#/speaker_id", "$response.body#/best", "$response.body#/removed"


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
        description="Speaker enrollment, verification and identification. Every operation except "
        "/health needs the API key (Authorization: Bearer KEY or X-API-Key: KEY). Every error is "
        '{"error": code, "detail": text} (the ErrorBody schema lists the codes).',
    )
    max_samples = int(max_seconds * SAMPLE_RATE)
    install_error_handlers(app)

    def load(upload: UploadFile) -> tuple[np.ndarray, str]:
        name = recording_label(upload.filename)
        wave = verifier.load(upload.file.read(), name=name)  # (N,) 16 kHz
        if len(wave) > max_samples:
            raise ClientError(E.TOO_LONG, f"{name}: {len(wave) / SAMPLE_RATE:.1f} s of audio, "
                              f"the server accepts at most {max_seconds:g} s")
        return wave, name

    def speaker(speaker_id: str, new: bool = False) -> str:
        try:
            return (validate_enrollable_id if new else validate_speaker_id)(speaker_id)
        except StoreError as err:
            raise ClientError(E.INVALID_SPEAKER_ID, str(err)) from None

    @app.get("/health", operation_id="health", summary="Liveness and model information (no key needed)")
    def health() -> Health:
        return Health(status="ok", version=app.version, model=verifier.fingerprint[:12],
                      calibrated=verifier.calibration is not None, threshold_source=verifier.threshold.source)

    @app.get("/speakers", operation_id="list_speakers", summary="Enrolled speakers",
             responses=answers(*GUARDED, verify=link("verify_speaker", "verify the first speaker listed",
                                                     speaker_id="$response.body#/speakers/0/speaker_id")))
    def list_speakers() -> Speakers:
        return Speakers(speakers=verifier.speakers())

    @app.post("/speakers/{speaker_id:path}/enroll", operation_id="enroll_speaker",
              summary="Enroll a speaker from one or more recordings (adds to earlier ones)",
              openapi_extra=upload_body("files", max_upload_mb, max_seconds),
              responses=answers(*GUARDED, *UPLOAD, E.INVALID_SPEAKER_ID, E.STORE_CONFLICT,
                                verify=link("verify_speaker", "verify a recording against them", speaker_id=SPEAKER),
                                identify=link("identify_speaker", "identify a recording among everyone enrolled"),
                                delete=link("delete_speaker", "forget them", speaker_id=SPEAKER)))
    def enroll(speaker_id: NewSpeakerId,
               files: list[UploadFile] = audio_field("one or more recordings of the speaker", many=True),
               replace: Replace = False) -> Enrolled:
        speaker_id = speaker(speaker_id, new=True)
        loaded = [load(f) for f in files]
        done = verifier.enroll(speaker_id, [(w, SAMPLE_RATE) for w, _ in loaded],
                               labels=[n for _, n in loaded], replace=replace)
        return Enrolled(speaker_id=speaker_id, added=len(loaded), recordings=done.recordings,
                        added_recordings=[RecordingReport(label=label, **quality.to_dict())
                                          for label, quality in zip(done.labels, done.added)])

    @app.post("/speakers/{speaker_id:path}/verify", operation_id="verify_speaker",
              summary="Is this recording the enrolled speaker?",
              openapi_extra=upload_body("file", max_upload_mb, max_seconds),
              responses=answers(*GUARDED, *UPLOAD, E.INVALID_SPEAKER_ID, E.UNKNOWN_SPEAKER, E.STORE_CONFLICT,
                                identify=link("identify_speaker", "identify a recording among everyone enrolled"),
                                delete=link("delete_speaker", "forget them", speaker_id=SPEAKER)))
    def verify(speaker_id: SpeakerId, file: UploadFile = audio_field("the recording to verify")) -> Verified:
        speaker_id = speaker(speaker_id)
        wave, name = load(file)
        return Verified(speaker_id=speaker_id, **verifier.verify(speaker_id, (wave, SAMPLE_RATE), name=name).to_dict())

    @app.post("/identify", operation_id="identify_speaker",
              summary=f"Rank enrolled speakers; best is {UNKNOWN!r} when none passes the threshold",
              openapi_extra=upload_body("file", max_upload_mb, max_seconds),
              responses=answers(*GUARDED, *UPLOAD,
                                verify=link("verify_speaker", "verify against the best match", speaker_id=BEST),
                                delete=link("delete_speaker", "forget the best match", speaker_id=BEST)))
    def identify(file: UploadFile = audio_field("the recording to identify"),
                 top_k: TopK = 5) -> Identified:
        wave, name = load(file)
        return Identified.model_validate(verifier.identify((wave, SAMPLE_RATE), top_k=top_k, name=name).to_dict())

    @app.delete("/speakers/{speaker_id}", operation_id="delete_speaker",
                summary="Forget a speaker and their recordings",
                responses=answers(*GUARDED, E.INVALID_SPEAKER_ID, E.UNKNOWN_SPEAKER,
                                  verify=link("verify_speaker", "a forgotten speaker is 404", speaker_id=REMOVED)))
    def remove(speaker_id: SpeakerId) -> Removed:
        speaker_id = speaker(speaker_id)
        return Removed(removed=speaker_id, recordings=verifier.remove(speaker_id))

    app.openapi = lambda: _openapi_with_auth(app)  # type: ignore[method-assign]
    app.add_middleware(Guard, api_key=api_key, max_body_bytes=int(max_upload_mb * 2**20))
    return app


def answers(*codes: ErrorCode, **links: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    """``responses`` of an operation: an error answer per status of ``codes``, and links from its 200."""
    return {**documented(*codes), 200: {"links": links}}


def _openapi_with_auth(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI schema with the two API-key schemes (enforced by :class:`Guard`) on every operation
    but the public ones."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description,
                             routes=app.routes)
        schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
        for path, operations in schema["paths"].items():
            for operation in operations.values():
                operation["security"] = [] if path in PUBLIC_PATHS else SECURITY
        app.openapi_schema = schema
    return app.openapi_schema
