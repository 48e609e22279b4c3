"""The command-line options of voice activity detection and of the speech gate, shared by every command
that embeds audio (each chooses its own default; see the README's "Real recordings")."""
from __future__ import annotations

import argparse

from ..embedding.vad import VadOptions
from ..verification.quality import Purpose, RecordingQuality, SpeechGate


def add_vad_args(parser: argparse.ArgumentParser, default: bool) -> None:
    """``--vad`` / ``--no-vad`` (on by default when ``default``) and ``--vad-threshold``."""
    on = "on by default" if default else "off by default"
    parser.add_argument("--vad", action=argparse.BooleanOptionalAction, default=default,
                        help=f"embed each recording's speech alone, found by Silero VAD ({on})")
    parser.add_argument("--vad-threshold", type=float, default=VadOptions.threshold, metavar="P",
                        help=f"speech probability that starts speech (default {VadOptions.threshold})")


def vad_from_args(args: argparse.Namespace) -> VadOptions | None:
    """The VAD options of ``args``, or None with ``--no-vad``."""
    return VadOptions(threshold=args.vad_threshold) if args.vad else None


def add_min_speech_arg(parser: argparse.ArgumentParser, purpose: Purpose) -> None:
    seconds = SpeechGate().required(purpose)
    parser.add_argument("--min-speech", type=float, default=seconds, metavar="S",
                        help=f"refuse recordings with less than S seconds of speech (default {seconds:g}; 0: no check)")


def gate_from_args(args: argparse.Namespace, purpose: Purpose) -> SpeechGate:
    """The default gate with ``--min-speech`` for ``purpose``."""
    if purpose == "enroll":
        return SpeechGate(enroll_seconds=args.min_speech)
    return SpeechGate(test_seconds=args.min_speech)


def describe_quality(quality: RecordingQuality) -> str:
    """``3.42 s of speech in 5.00 s, ghost mass 0.310`` (the parts that are known)."""
    parts = []
    if quality.speech_seconds is not None:
        total = f" in {quality.seconds:.2f} s" if quality.seconds is not None else ""
        parts.append(f"{quality.speech_seconds:.2f} s of speech{total}")
    if quality.ghost_mass is not None:
        parts.append(f"ghost mass {quality.ghost_mass:.3f}")
    return ", ".join(parts) or "no quality recorded"
