"""Load audio for the model: decode, mix to mono, resample, validate.

Every problem a user can cause raises :class:`AudioError` naming the file and
the problem, never an exception from deep inside a decoder.

>>> import numpy as np
>>> wave = load_audio(np.ones(8000, dtype=np.float32) * 0.1, sample_rate=8000)
>>> wave.shape, wave.dtype
((16000,), dtype('float32'))
"""
from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError

SAMPLE_RATE = 16000
#: containers decoded with ffmpeg (VoxCeleb2 ships M4A)
FFMPEG_SUFFIXES = {".m4a", ".aac", ".mp4", ".webm", ".opus", ".wma", ".amr"}
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3"} | FFMPEG_SUFFIXES

AudioSource = str | Path | bytes | np.ndarray


def load_audio(
    source: AudioSource,
    sample_rate: int | None = None,
    target_rate: int = SAMPLE_RATE,
    min_seconds: float = 0.0,
    name: str | None = None,
) -> np.ndarray:
    """Return a mono float32 waveform at ``target_rate``.

    ``source`` is a file path, the bytes of an encoded file, or an array
    (``(N,)`` or ``(N, channels)``) whose ``sample_rate`` must then be given.
    ``name`` labels the audio in error messages (default: the path).
    """
    label = audio_label(source, name)
    if isinstance(source, np.ndarray):
        if sample_rate is None:
            raise AudioError(label, "an array needs its sample_rate")
        wave, rate = np.asarray(source), int(sample_rate)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        wave, rate = _decode_bytes(bytes(source), label)
    elif isinstance(source, (str, Path)):
        wave, rate = _decode_file(Path(source), label)
    else:
        raise AudioError(label, f"unsupported audio source type {type(source).__name__}")
    wave = _to_mono(wave, label)
    _validate(wave, label)
    if rate != target_rate:
        wave = soxr.resample(wave, rate, target_rate, quality="HQ").astype(np.float32)
    if min_seconds and len(wave) < min_seconds * target_rate:
        raise AudioError(
            label,
            f"too short: {len(wave) / target_rate:.3f} s, the model needs at least "
            f"{min_seconds:.3f} s of audio",
        )
    return np.ascontiguousarray(wave, dtype=np.float32)


def audio_duration(path: str | Path) -> float:
    """Duration in seconds from the header, without decoding (soundfile formats)."""
    try:
        info = sf.info(str(path))
    except Exception as err:  # noqa: BLE001 - any decoder failure is the file's problem
        raise AudioError(path, f"cannot read header: {err}") from None
    return info.frames / info.samplerate


def ffmpeg_available() -> bool:
    return shutil.which("ffmpeg") is not None


def audio_label(source: object, name: str | None = None) -> str:
    """What error messages call ``source``: ``name``, else the path, else ``<bytes>`` or ``<array>``."""
    if name:
        return name
    if isinstance(source, (str, Path)):
        return str(source)
    return "<bytes>" if isinstance(source, (bytes, bytearray, memoryview)) else "<array>"


def _decode_file(path: Path, label: str) -> tuple[np.ndarray, int]:
    if not path.exists():
        raise AudioError(label, "no such file")
    if path.is_dir():
        raise AudioError(label, "is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(label, "empty file (0 bytes)")
    if path.suffix.lower() in FFMPEG_SUFFIXES:
        return _decode_ffmpeg(str(path), label)
    try:
        with sf.SoundFile(str(path)) as handle:
            declared = handle.frames
            wave = handle.read(dtype="float32", always_2d=False)
            rate = handle.samplerate
    except sf.LibsndfileError as err:
        if ffmpeg_available() and "recognised" in str(err).lower():
            return _decode_ffmpeg(str(path), label)
        raise AudioError(label, f"unsupported or corrupt audio ({err})") from None
    except Exception as err:  # noqa: BLE001
        raise AudioError(label, f"corrupt audio ({err})") from None
    if len(wave) < declared:
        raise AudioError(
            label, f"truncated: the header declares {declared} samples, the file holds {len(wave)}"
        )
    missing = _wav_missing_bytes(path)
    if missing:
        raise AudioError(label, f"truncated: the WAV header declares {missing} more bytes of audio than the file holds")
    return wave, rate


def _wav_missing_bytes(path: Path) -> int:
    """Bytes the RIFF 'data' chunk declares beyond the end of the file (0 if whole or not WAV)."""
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return 0
        while True:
            chunk = handle.read(8)
            if len(chunk) < 8:
                return 0
            size = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                if size == 0xFFFFFFFF:  # streamed WAV of unknown length
                    return 0
                remaining = path.stat().st_size - handle.tell()
                return max(0, size - remaining)
            handle.seek(size + (size & 1), 1)


def _decode_bytes(data: bytes, label: str) -> tuple[np.ndarray, int]:
    if not data:
        raise AudioError(label, "empty audio (0 bytes)")
    try:
        wave, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
        return wave, rate
    except Exception as err:  # noqa: BLE001
        if ffmpeg_available():
            return _decode_ffmpeg("pipe:0", label, stdin=data)
        raise AudioError(label, f"unsupported or corrupt audio ({err})") from None


def _decode_ffmpeg(target: str, label: str, stdin: bytes | None = None) -> tuple[np.ndarray, int]:
    if not ffmpeg_available():
        raise AudioError(
            label,
            "decoding this container (M4A/AAC/...) needs ffmpeg, which is not installed; "
            "install it (apt-get install ffmpeg, brew install ffmpeg) or convert the file to WAV/FLAC",
        )
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", target, "-f", "f32le", "-ac", "1",
           "-ar", str(SAMPLE_RATE), "pipe:1"]
    try:
        done = subprocess.run(cmd, input=stdin, capture_output=True, timeout=3600, check=False)
    except subprocess.TimeoutExpired:
        raise AudioError(label, "ffmpeg did not finish decoding within an hour") from None
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise AudioError(label, f"ffmpeg cannot decode it: {reason[-1] if reason else 'unknown error'}")
    return np.frombuffer(done.stdout, dtype="<f4").copy(), SAMPLE_RATE


def _to_mono(wave: np.ndarray, label: str) -> np.ndarray:
    if not np.issubdtype(wave.dtype, np.number):
        raise AudioError(label, f"samples must be numbers, got dtype {wave.dtype}")
    if np.issubdtype(wave.dtype, np.integer):
        wave = wave.astype(np.float32) / float(np.iinfo(wave.dtype).max)
    wave = wave.astype(np.float32, copy=False)
    if wave.ndim == 2:
        # (N, channels) as soundfile returns; a (channels, N) array is transposed
        if wave.shape[0] < wave.shape[1] and wave.shape[0] <= 8:
            wave = wave.T
        wave = wave.mean(axis=1)
    elif wave.ndim != 1:
        raise AudioError(label, f"expected a 1-D or (samples, channels) array, got shape {wave.shape}")
    return wave


def _validate(wave: np.ndarray, label: str) -> None:
    if wave.size == 0:
        raise AudioError(label, "zero-length audio (no samples)")
    if not np.all(np.isfinite(wave)):
        bad = int(np.count_nonzero(~np.isfinite(wave)))
        raise AudioError(label, f"{bad} samples are NaN or infinite")
    if not np.any(wave):
        raise AudioError(label, "silent: every sample is zero")


def is_audio_file(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_SUFFIXES
