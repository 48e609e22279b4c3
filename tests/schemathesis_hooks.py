"""Schemathesis hooks: recordings for the upload fields (``format: binary``), so fuzzed requests can succeed.

A schema cannot say which bytes are decodable speech (nor which hold enough
speech for the server's voice activity detector), so without these the fuzzer
only sends non-audio files: every upload is a 400 ``bad_audio`` (which its
``positive_data_acceptance`` check reports as a valid request rejected), and enroll
never succeeds for the stateful phase to follow the schema's links. Load with
``SCHEMATHESIS_HOOKS=tests/schemathesis_hooks.py schemathesis run ...``.
"""
from __future__ import annotations

import functools
import io
import sys
from pathlib import Path

import schemathesis
import soundfile as sf
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import speech  # noqa: E402  (numpy only: the fuzzer's process need not import torch)


@functools.cache
def recording(speaker: int, take: int) -> bytes:
    """3 s of synthetic speech at 8 kHz (a phone call; 48 kB, so that many fit a 1 MB upload limit): the
    server's VAD finds 2.1-3.0 s of speech in each of these 32, enough for its default speech gate (2 s
    to enroll), and 3 s is within a --max-seconds 3 server's limit."""
    buffer = io.BytesIO()
    sf.write(buffer, speech(3.0, speaker, take, rate=8000), 8000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


#: every ``format: binary`` value is a recording (the service takes no other binary)
schemathesis.openapi.format("binary", st.builds(recording, st.integers(0, 7), st.integers(0, 3)))
