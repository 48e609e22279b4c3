#!/usr/bin/env python3
"""Convert a VoxCeleb2 M4A tree to 16 kHz mono 16-bit WAV (or FLAC) with ffmpeg, in parallel.

    local/convert_audio.py --src voxceleb2/dev/aac --dst voxceleb2/dev/wav --jobs 8

``SRC/idXXXXX/<video>/NNNNN.m4a`` becomes ``DST/idXXXXX/<video>/NNNNN.wav``.
Resumable and verified: each output is written to a hidden temporary file,
checked (16 kHz, mono, non-empty, and its duration within ``--tolerance``
seconds of the source duration ffmpeg reports) and only then renamed into
place. An existing output whose header checks out is kept; a bad one is
converted again. Failures are listed in ``DST/convert_failures.tsv`` and make
the exit status 1.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

RATE = 16000
FORMATS = {"wav": ("wav", "pcm_s16le"), "flac": ("flac", "flac")}
DURATION = re.compile(rb"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
FAILURES = "convert_failures.tsv"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", required=True, type=Path, help="folder of M4A files (any depth)")
    parser.add_argument("--dst", required=True, type=Path, help="output folder (same layout)")
    parser.add_argument("--format", choices=sorted(FORMATS), default="wav")
    parser.add_argument("--ext", default="m4a", help="source extension (default m4a)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel ffmpeg processes")
    parser.add_argument("--tolerance", type=float, default=0.1,
                        help="allowed difference between source and output duration, seconds")
    args = parser.parse_args()
    if not args.src.is_dir():
        print(f"convert_audio: no such folder {args.src}", file=sys.stderr)
        return 1
    sources = sorted(args.src.rglob(f"*.{args.ext}"))
    if not sources:
        print(f"convert_audio: no .{args.ext} files under {args.src}", file=sys.stderr)
        return 1
    suffix = "." + FORMATS[args.format][0]
    tasks = [(src, args.dst / src.relative_to(args.src).with_suffix(suffix)) for src in sources]
    done = failed = 0
    failures: list[str] = []
    with ThreadPoolExecutor(max(1, args.jobs)) as pool, \
            tqdm(total=len(tasks), unit="file", desc="convert", disable=None) as bar:
        for status, line in pool.map(lambda t: convert(*t, args.format, args.tolerance), tasks):
            bar.update(1)
            if status == "failed":
                failed += 1
                failures.append(line)
            elif status == "kept":
                done += 1
    args.dst.mkdir(parents=True, exist_ok=True)
    (args.dst / FAILURES).write_text("# source<TAB>problem\n" + "".join(f"{f}\n" for f in failures))
    converted = len(tasks) - done - failed
    print(f"convert_audio: {converted} converted, {done} already done, {failed} failed "
          f"({args.src} -> {args.dst})")
    if failed:
        print(f"convert_audio: failures are listed in {args.dst / FAILURES}; fix or remove those "
              "sources and run again (finished files are kept)", file=sys.stderr)
        return 1
    return 0


def convert(src: Path, dst: Path, fmt: str, tolerance: float) -> tuple[str, str]:
    """Convert one file; returns (``kept`` | ``converted`` | ``failed``, failure line)."""
    if dst.exists() and check_output(dst) is None:
        return "kept", ""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    container, codec = FORMATS[fmt]
    command = ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-y", "-i", str(src), "-vn",
               "-ac", "1", "-ar", str(RATE), "-c:a", codec, "-f", container, str(tmp)]
    try:
        run = subprocess.run(command, capture_output=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as err:
        return "failed", f"{src}\tffmpeg did not run: {err}"
    if run.returncode != 0:
        tmp.unlink(missing_ok=True)
        last = run.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        return "failed", f"{src}\tffmpeg exit {run.returncode}: {last[0]}"
    problem = check_output(tmp, source_seconds(run.stderr), tolerance)
    if problem:
        tmp.unlink(missing_ok=True)
        return "failed", f"{src}\t{problem}"
    os.replace(tmp, dst)
    return "converted", ""


def source_seconds(ffmpeg_log: bytes) -> float | None:
    """The input duration from ffmpeg's ``Duration: HH:MM:SS.ss`` line, if it printed one."""
    match = DURATION.search(ffmpeg_log)
    if not match:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def check_output(path: Path, expected: float | None = None, tolerance: float = 0.1) -> str | None:
    """None when ``path`` is a non-empty 16 kHz mono file (of ``expected`` seconds), else the problem."""
    try:
        info = sf.info(str(path))
    except Exception as err:  # noqa: BLE001 - any decoder failure is the file's problem
        return f"unreadable output: {err}"
    if info.samplerate != RATE or info.channels != 1 or info.frames == 0:
        return f"bad output: {info.samplerate} Hz, {info.channels} channels, {info.frames} samples"
    seconds = info.frames / info.samplerate
    if expected is not None and abs(seconds - expected) > tolerance:
        return f"output lasts {seconds:.3f} s but the source {expected:.3f} s"
    return None


if __name__ == "__main__":
    sys.exit(main())
