"""Speed of voice activity detection: milliseconds of CPU per second of audio, per file.

For each recording, the best of ``--repeats`` runs of
``VoiceActivityDetector().segments(wave)`` (speakervlad's: Silero VAD's ONNX
sequence export on onnxruntime, one thread), as wall and process-CPU time divided
by the recording's duration: a ratio, comparable across files of any length. The
peer, on the same audio, is Silero's own path: its TorchScript model called frame
by frame through ``silero_vad.get_speech_timestamps`` on one torch thread
(``--no-peer`` leaves it out). Decoding is not timed.

Data: the LibriSpeech subset of ``../shared/data`` (``--files`` of its
recordings, 1.6-17 s), or the files given with ``--audio``.

    python benchmarks/vad_speed.py                       # 20 LibriSpeech recordings
    python benchmarks/vad_speed.py --audio call.wav --repeats 3 --no-peer
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from speakervlad.audio import load_audio
from speakervlad.embedding.vad import VadOptions, VoiceActivityDetector

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "librispeech-train-clean-100-subset"


def best_of(fn, repeats: int) -> tuple[float, float]:
    """(wall, CPU) seconds of the fastest of ``repeats`` calls, after one warm-up call."""
    fn()
    runs = []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        runs.append((time.perf_counter() - wall, time.process_time() - cpu))
    return min(r[0] for r in runs), min(r[1] for r in runs)


def silero_peer():
    """Silero's own TorchScript path (get_speech_timestamps, frame by frame) on one torch thread."""
    import torch
    from silero_vad import get_speech_timestamps, load_silero_vad

    torch.set_num_threads(1)
    model = load_silero_vad()
    options = VadOptions()

    def run(wave: np.ndarray) -> list:
        return get_speech_timestamps(torch.from_numpy(wave), model, threshold=options.threshold,
                                     min_speech_duration_ms=options.min_speech_seconds * 1000,
                                     min_silence_duration_ms=options.min_silence_seconds * 1000,
                                     speech_pad_ms=options.pad_seconds * 1000)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio", nargs="+", type=Path, help="recordings to time (default: LibriSpeech)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of recordings (without --audio)")
    parser.add_argument("--files", type=int, default=20, help="recordings of --data to time (default 20)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per file; the best counts (default 5)")
    parser.add_argument("--no-peer", action="store_true", help="leave out Silero's own TorchScript path")
    args = parser.parse_args()
    paths = args.audio or sorted(p for p in args.data.rglob("*") if p.suffix in (".flac", ".wav"))[: args.files]
    if not paths:
        raise SystemExit(f"no recordings: give --audio, or --data with .flac/.wav files (looked in {args.data})")
    detector = VoiceActivityDetector()
    peer = None if args.no_peer else silero_peer()
    print(f"| file | seconds | speech % | ms wall | ms CPU | CPU ms / s audio |"
          f"{' Silero TorchScript CPU ms / s | speedup |' if peer else ''}")
    print(f"|---|---:|---:|---:|---:|---:|{'---:|---:|' if peer else ''}")
    total_audio = total_cpu = total_peer = 0.0
    for path in paths:
        wave = load_audio(path)
        seconds = len(wave) / 16000
        wall, cpu = best_of(lambda w=wave: detector.segments(w), args.repeats)
        share = detector.segments(wave).seconds / seconds
        row = f"| {path.name} | {seconds:.2f} | {100 * share:.0f} | {1000 * wall:.2f} | {1000 * cpu:.2f} | " \
              f"{1000 * cpu / seconds:.3f} |"
        total_audio, total_cpu = total_audio + seconds, total_cpu + cpu
        if peer:
            _, peer_cpu = best_of(lambda w=wave: peer(w), max(1, args.repeats // 2))
            total_peer += peer_cpu
            row += f" {1000 * peer_cpu / seconds:.3f} | {peer_cpu / cpu:.1f}x |"
        print(row)
    summary = f"all {len(paths)} files: {total_audio:.1f} s of audio, {1000 * total_cpu / total_audio:.3f} ms CPU " \
              "per second of audio"
    if peer:
        summary += f" (Silero's TorchScript path: {1000 * total_peer / total_audio:.3f}; {total_peer / total_cpu:.1f}x)"
    print(summary)


if __name__ == "__main__":
    main()
