"""Check that every file of an utterance list can be used, before training.

Unusable files (missing, empty, corrupt header, undecodable container, too
short) are skipped, counted in the log and listed with their reason in a
report file: never dropped silently.
"""
from __future__ import annotations

import json
import logging
import shutil
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from ..audio import FFMPEG_SUFFIXES
from ..errors import ConfigError
from .lists import Utterance

logger = logging.getLogger(__name__)

REPORT_HEADER = "# unusable utterances: key<TAB>path<TAB>reason"


def check_readable(
    utts: Sequence[Utterance],
    report_path: str | Path | None = None,
    min_seconds: float = 0.0,
    jobs: int = 1,
) -> list[Utterance]:
    """The utterances whose file opens and lasts at least ``min_seconds``.

    WAV/FLAC/OGG headers are read with soundfile (no decoding); ffmpeg formats
    (M4A, ...) are probed with ``ffprobe``. The duration of a speed-perturbed copy
    is its file's duration divided by its speed. Skipped utterances are written to
    ``report_path`` (``key<TAB>path<TAB>reason``; the header alone when none) and
    their count is logged. ``jobs`` threads probe files in parallel.
    """
    paths = sorted({utt.path for utt in utts})
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        probes = dict(zip(paths, tqdm(
            pool.map(probe_duration, paths), total=len(paths), desc="checking audio",
            unit="file", disable=None, leave=False,
        )))
    kept, skipped = [], []
    for utt in utts:
        seconds, reason = probes[utt.path]
        if reason is None and seconds / utt.speed < min_seconds:
            reason = f"too short: {seconds / utt.speed:.3f} s, min_seconds is {min_seconds:g}"
        if reason is None:
            kept.append(utt)
        else:
            skipped.append((utt, reason))
    if report_path is not None:
        lines = [REPORT_HEADER] + [f"{u.key}\t{u.path}\t{why}" for u, why in skipped]
        Path(report_path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    where = f"; list: {report_path}" if report_path is not None else ""
    if skipped:
        shown = "; ".join(f"{u.path}: {why}" for u, why in skipped[:3])
        logger.warning("skipped %d of %d utterances that cannot be used (e.g. %s)%s",
                       len(skipped), len(utts), shown, where)
    else:
        logger.info("all %d utterances are readable%s", len(utts), where)
    if utts and not kept:
        raise ConfigError(f"none of the {len(utts)} utterances can be used{where}")
    return kept


def probe_duration(path: str) -> tuple[float | None, str | None]:
    """``(seconds, None)`` for a usable file, ``(None, reason)`` otherwise."""
    file = Path(path)
    if not file.exists():
        return None, "no such file"
    if not file.is_file():
        return None, "not a file"
    if file.stat().st_size == 0:
        return None, "empty file (0 bytes)"
    if file.suffix.lower() in FFMPEG_SUFFIXES:
        return _ffprobe(path)
    try:
        info = sf.info(path)
    except Exception as err:  # noqa: BLE001 - any header failure is the file's problem
        reason = f"unreadable header ({getattr(err, 'error_string', err)})"
        if "recognised" in str(err).lower() and shutil.which("ffprobe"):
            seconds, why = _ffprobe(path)
            return (seconds, None) if why is None else (None, f"{reason}; {why}")
        return None, reason
    if info.frames <= 0 or info.samplerate <= 0:
        return None, "no samples"
    return info.frames / info.samplerate, None


def _ffprobe(path: str) -> tuple[float | None, str | None]:
    if shutil.which("ffprobe") is None:
        return None, "decoding this container needs ffmpeg/ffprobe, which is not installed"
    cmd = ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
           "stream=index,duration:format=duration", "-of", "json", path]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        return None, "ffprobe did not answer within 60 s"
    if done.returncode != 0:
        lines = done.stderr.strip().replace(f"{path}: ", "").splitlines()
        return None, f"ffprobe cannot read it: {lines[-1] if lines else 'unknown error'}"
    found = json.loads(done.stdout or "{}")
    if not found.get("streams"):
        return None, "no audio stream"
    text = found["streams"][0].get("duration") or found.get("format", {}).get("duration", "")
    try:
        seconds = float(text)
    except ValueError:
        return None, f"ffprobe gives no duration ({text!r})"
    return (seconds, None) if seconds > 0 else (None, "no samples")
