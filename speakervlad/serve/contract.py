"""What the HTTP service promises, as OpenAPI sees it: answer models, the speaker-id
parameter, upload fields, and the links between operations.

The speaker-id rule comes from :mod:`speakervlad.verification.identifiers`, the same constants the
store checks, so the schema and the service cannot disagree about it.

>>> Enrolled(speaker_id="alice", added=1, recordings=3, added_recordings=[
...     RecordingReport(label="a.wav", seconds=5.0, speech_seconds=4.2, ghost_mass=None)]).model_dump()["recordings"]
3
>>> link("delete_speaker", "forget them", speaker_id="$response.body#/speaker_id")["operationId"]
'delete_speaker'
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import File, Path, Query
from pydantic import BaseModel, BeforeValidator, Field

from ..verification.identifiers import SPEAKER_ID_MAX_CHARS, SPEAKER_ID_PATTERN, UNKNOWN

SPEAKER_ID_RULE = (f"1-{SPEAKER_ID_MAX_CHARS} ASCII characters from letters, digits and `. _ - @`, "
                   "not starting with `.`")
#: what the upload fields carry; the decoder reads WAV, FLAC, OGG and MP3, and more with ffmpeg
AUDIO_MEDIA_TYPE = "audio/*"


class Health(BaseModel):
    status: Literal["ok"]
    version: str = Field(description="speakervlad version")
    model: str = Field(description="the first 12 hex digits of the loaded model's fingerprint")
    calibrated: bool = Field(description="whether the model carries a score calibration (then llr is set)")
    threshold_source: str = Field(description="where the accept threshold comes from, in words")


class Speaker(BaseModel):
    speaker_id: str
    recordings: int = Field(ge=0, description="enrolled recordings")
    current_model: bool = Field(description="false: enrolled with another model, re-enroll before verifying")


class Speakers(BaseModel):
    speakers: list[Speaker] = Field(description="sorted by speaker_id")


SPEECH_SECONDS = "seconds of speech the embedding used: the voice activity detector's segments (all the audio " \
    "when the server runs with --no-vad)"
GHOST_MASS = "GhostVLAD models: the share of the frames' assignment mass that went to the ghost clusters, in " \
    "[0, 1]; null for models without clusters"


class RecordingReport(BaseModel):
    label: str = Field(description="the recording's label (its file name)")
    seconds: float = Field(ge=0, description="the recording's duration")
    speech_seconds: float = Field(ge=0, description=SPEECH_SECONDS)
    ghost_mass: float | None = Field(ge=0, le=1, description=GHOST_MASS)


class Enrolled(BaseModel):
    speaker_id: str
    added: int = Field(ge=1, description="recordings added by this request")
    recordings: int = Field(ge=1, description="the speaker's recordings in total")
    added_recordings: list[RecordingReport] = Field(description="what each added recording gave, in order")


class Verified(BaseModel):
    speaker_id: str
    score: float = Field(description="cosine similarity to the speaker's enrolled profile")
    llr: float | None = Field(description="calibrated log-likelihood ratio; null when the model is uncalibrated")
    accepted: bool = Field(description="score >= threshold")
    threshold: float = Field(description="the accept threshold, on the score scale")
    threshold_source: str
    speech_seconds: float = Field(ge=0, description=SPEECH_SECONDS)
    ghost_mass: float | None = Field(ge=0, le=1, description=GHOST_MASS)


class Candidate(BaseModel):
    speaker_id: str
    score: float
    llr: float | None


class Identified(BaseModel):
    best: str = Field(description=f"the top candidate if they pass the threshold, else {UNKNOWN!r}")
    candidates: list[Candidate] = Field(description="the top_k enrolled speakers, best score first")
    threshold: float
    threshold_source: str
    speech_seconds: float = Field(ge=0, description=SPEECH_SECONDS)
    ghost_mass: float | None = Field(ge=0, le=1, description=GHOST_MASS)


class Removed(BaseModel):
    removed: str = Field(description="the speaker id that was forgotten")
    recordings: int = Field(ge=0, description="recordings deleted with them")


def speaker_id_path(enrollable: bool = False) -> Any:
    """The ``{speaker_id}`` path parameter; ``enrollable`` excludes the reserved :data:`UNKNOWN`."""
    schema: dict[str, Any] = {"minLength": 1, "maxLength": SPEAKER_ID_MAX_CHARS, "pattern": SPEAKER_ID_PATTERN}
    if enrollable:
        schema["not"] = {"const": UNKNOWN}
    reserved = f"; {UNKNOWN!r} is reserved" if enrollable else ""
    # checked by identifiers.validate_*, which answers invalid_speaker_id; the schema only says the rule
    return Path(description=f"{SPEAKER_ID_RULE}{reserved}", json_schema_extra=schema, examples=["alice"])


#: a speaker id in a path; the enrollable one excludes the reserved UNKNOWN
SpeakerId = Annotated[str, speaker_id_path()]
NewSpeakerId = Annotated[str, speaker_id_path(enrollable=True)]


def _query_integer(value: object) -> object:
    if isinstance(value, str) and not re.fullmatch(r"-?[0-9]+", value):
        raise ValueError("expected an integer in digits")
    return value


def _query_boolean(value: object) -> object:
    if isinstance(value, str) and value.lower() not in ("true", "false", "1", "0"):
        raise ValueError("expected true or false")
    return value


# query values only as the schema writes them: pydantic alone also reads "5_0", "+5", "yes", "on", "t" ...
TopK = Annotated[int, Query(ge=1, le=100, description="how many candidates to return"),
                 BeforeValidator(_query_integer)]
Replace = Annotated[bool, Query(description="drop the speaker's earlier recordings first"),
                    BeforeValidator(_query_boolean)]


def audio_field(what: str, many: bool = False) -> Any:
    """A multipart file field (``many``: repeated), declared ``format: binary`` for client generators."""
    binary = {"type": "string", "format": "binary", "contentMediaType": "application/octet-stream"}
    schema = {"items": binary, "minItems": 1} if many else binary
    return File(description=f"{what}: an audio file (WAV, FLAC, OGG, MP3; more with ffmpeg on the server), "
                "any sample rate, mixed down to mono", json_schema_extra=schema)


def upload_body(field: str, max_upload_mb: float, max_seconds: float) -> dict[str, Any]:
    """``openapi_extra`` for a multipart upload: limits, the audio media type, other fields ignored."""
    return {"requestBody": {
        "description": f"multipart/form-data of at most {max_upload_mb:g} MB in all (else 413 `too_large`); "
                       f"each recording at most {max_seconds:g} s of audio (else 413 `too_long`). "
                       "Other form fields are ignored.",
        "content": {"multipart/form-data": {"encoding": {field: {
            "contentType": AUDIO_MEDIA_TYPE,
            "headers": {"Content-Disposition": {
                "description": "each recording is a file part: it needs a filename, which becomes its label",
                "required": True, "schema": {"type": "string"},
                "example": f'form-data; name="{field}"; filename="recording.wav"'}},
        }}}},
    }}


def link(operation_id: str, description: str, **parameters: str) -> dict[str, Any]:
    """An OpenAPI link to ``operation_id``, its parameters taken from runtime expressions."""
    return {"operationId": operation_id, "description": description,
            **({"parameters": parameters} if parameters else {})}
