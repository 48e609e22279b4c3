"""Schemathesis hooks: recordings for the upload fields (``format: binary``), so fuzzed requests can succeed.

A schema cannot say which bytes are decodable speech, so without these the fuzzer
only sends non-audio files: every upload is a 400 ``bad_audio`` (which its
``positive_data_acceptance`` check reports as a valid request rejected), and enroll
never succeeds for the stateful phase to follow the schema's links. Load with
``SCHEMATHESIS_HOOKS=tests/schemathesis_hooks.py schemathesis run ...``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import schemathesis
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers_serve import wav_bytes  # noqa: E402

#: every ``format: binary`` value is a recording (the service takes no other binary)
schemathesis.openapi.format(
    "binary", st.builds(wav_bytes, st.integers(0, 7), st.sampled_from([0.5, 1.0, 1.5]), st.integers(0, 3)))
