"""``speakervlad serve`` as a new user runs it: a subprocess on a loopback port, spoken to over HTTP."""
from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
from conftest import speech
from helpers_api import RATE

KEY = "test-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}


def wav_bytes(speaker: int, seconds: float = 3.0, take: int = 0) -> bytes:
    """A WAV file of synthetic speech: 3 s give the VAD 2.3-3.0 s of speech, enough to enroll."""
    return encode(speech(seconds, speaker, take))


def encode(wave: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wave, RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``speakervlad serve`` in a subprocess; ``start`` waits until /health answers."""

    def __init__(self, model: Path, db: Path, log: Path, *extra: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [sys.executable, "-m", "speakervlad.cli.main", "serve", "--model", str(model),
                     "--db", str(db), "--port", str(self.port), *extra]
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> Server:
        env = {**os.environ, "SPEAKERVLAD_API_KEY": KEY, "OMP_NUM_THREADS": "1"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.args, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)
