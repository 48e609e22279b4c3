"""Schemathesis hooks: recordings for the upload fields (``format: binary``), so fuzzed requests can succeed.

A schema cannot say which bytes are decodable speech, so without these the fuzzer
only sends non-audio files: every upload is a 400 ``bad_audio`` (which its
``positive_data_acceptance`` check reports as a valid request rejected), and enroll
never succeeds for the stateful phase to follow the schema's links. Load with
``SCHEMATHESIS_HOOKS=tests/schemathesis_hooks.py schemathesis run ...``.
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

import schemathesis
import soundfile as sf
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import tone  # noqa: E402  (numpy only: the fuzzer's process need not import torch)


def recording(freq: float, seconds: float, seed: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, tone(seconds, freq=freq, seed=seed), 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


#: every ``format: binary`` value is a recording (the service takes no other binary)
schemathesis.openapi.format("binary", st.builds(
    recording, st.sampled_from([110.0, 150.0, 220.0, 330.0]), st.sampled_from([0.5, 1.0, 1.5]), st.integers(0, 3)))
