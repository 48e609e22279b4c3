"""``speakervlad explain``: one PNG of what the VAD and the VLAD clusters make of a recording.

    speakervlad explain --model model.pt call.wav -o explain.png

Spectrogram with the VAD's speech segments, the VAD's speech probability, the
soft assignment of every pooled frame to the K clusters and G ghost clusters,
and the ghost mass over time; prints the ghost mass over speech and non-speech
frames (``--json``: as JSON).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..embedding.explain import explain, plot_explanation
from ..embedding.torch_embedder import load_model
from ..embedding.vad import VadOptions


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("explain", help="picture what the VAD and the (ghost) clusters do with a recording")
    parser.add_argument("--model", required=True, type=Path, help="checkpoint (.pt) pooling with ghostvlad or netvlad")
    parser.add_argument("audio", type=Path, help="the recording (up to the model's whole length, 68 s by default)")
    parser.add_argument("-o", "--output", type=Path, default=Path("explain.png"), help="PNG to write (explain.png)")
    parser.add_argument("--vad-threshold", type=float, default=VadOptions.threshold, metavar="P",
                        help=f"speech probability that starts speech (default {VadOptions.threshold})")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    wave = model.load(args.audio)
    explanation = explain(model, wave, VadOptions(threshold=args.vad_threshold), name=str(args.audio))
    path = plot_explanation(explanation, args.output, title=f"{args.audio.name}: spectrogram and VAD speech (green)")
    summary = explanation.summary()
    if args.json:
        print(json.dumps({"png": str(path), **summary}))
        return 0
    print(f"wrote {path}: {summary['seconds']:.2f} s, {summary['speech_seconds']:.2f} s of speech in "
          f"{summary['segments']} segment(s), {summary['frames']} pooled frames")
    parts = [f"ghost mass {summary['ghost_mass']:.3f}"]
    for key, what in (("ghost_mass_speech", "speech frames"), ("ghost_mass_non_speech", "non-speech frames")):
        if summary[key] is not None:
            parts.append(f"{what} {summary[key]:.3f}")
    if summary["non_speech_auc"] is not None:
        parts.append(f"AUC of per-frame ghost mass for non-speech {summary['non_speech_auc']:.3f}")
    print("; ".join(parts))
    return 0
