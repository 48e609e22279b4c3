"""Speaker ids and recording labels: the one set of rules the store, the API, the CLI and
the HTTP service check.

* A **speaker id** is 1-64 ASCII characters from letters, digits and ``. _ - @``,
  not starting with ``.`` (:data:`SPEAKER_ID_PATTERN`). ``unknown`` is valid in
  the store but cannot be enrolled: identify answers it when nobody matches.
* A **recording label** (what an enrolled recording is called, usually its file
  name) is at most :data:`MAX_LABEL_CHARS` characters; :func:`recording_label`
  shortens a file name to fit.

>>> validate_enrollable_id("alice@example.org")
'alice@example.org'
>>> recording_label("x" * 300) == "x" * MAX_LABEL_CHARS
True
"""
from __future__ import annotations

import re

from ..errors import StoreError

SPEAKER_ID_PATTERN = r"^[A-Za-z0-9_@-][A-Za-z0-9._@-]{0,63}$"
SPEAKER_ID_MAX_CHARS = 64
#: what identify answers when nobody passes the threshold; never an enrolled id
UNKNOWN = "unknown"
MAX_LABEL_CHARS = 256

_SPEAKER_ID = re.compile(SPEAKER_ID_PATTERN)


def validate_speaker_id(speaker_id: object) -> str:
    """Return ``speaker_id`` if it follows :data:`SPEAKER_ID_PATTERN`; else StoreError saying the rule."""
    if not isinstance(speaker_id, str) or not _SPEAKER_ID.fullmatch(speaker_id):
        shown = repr(speaker_id) if len(repr(speaker_id)) <= 80 else repr(speaker_id)[:77] + "..."
        raise StoreError(
            f"invalid speaker id {shown}: use 1-{SPEAKER_ID_MAX_CHARS} characters from letters, digits "
            "and . _ - @ (ASCII), not starting with '.'"
        )
    return speaker_id


def validate_enrollable_id(speaker_id: object) -> str:
    """A valid speaker id that is not the reserved :data:`UNKNOWN`."""
    validate_speaker_id(speaker_id)
    if speaker_id == UNKNOWN:
        raise StoreError(f"invalid speaker id {UNKNOWN!r}: it is reserved (identify answers it when nobody matches)")
    return speaker_id


def validate_label(label: object) -> str:
    """Return ``label`` if it is a string of at most :data:`MAX_LABEL_CHARS` characters."""
    if not isinstance(label, str) or len(label) > MAX_LABEL_CHARS:
        raise StoreError(f"recording labels are strings of at most {MAX_LABEL_CHARS} characters")
    return label


def recording_label(name: str | None, default: str = "upload") -> str:
    """A label for a recording named ``name`` (a file name), shortened to :data:`MAX_LABEL_CHARS`."""
    return (name or default)[:MAX_LABEL_CHARS]
