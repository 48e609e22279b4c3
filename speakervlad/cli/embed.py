"""`speakervlad embed`: embed audio files, whole, into an embedding directory or stdout.

No VAD by default (research use: the embedding is a function of the audio as given); ``--vad``
embeds each file's speech alone.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

import numpy as np

from ..embedding import open_embedder
from ..embedding.directory import save_embeddings
from ..embedding.torch_embedder import retain_freed_memory
from ..errors import AudioError
from .speech_args import add_vad_args, vad_from_args

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("embed", help="embed audio files (whole recordings, any length)")
    parser.add_argument("--model", required=True, help="checkpoint file")
    parser.add_argument("audio", nargs="+", help="audio files (wav, flac, ogg, mp3; m4a with ffmpeg)")
    parser.add_argument("-o", "--output", help="embedding directory to write; default: print `key [ values ]` lines")
    parser.add_argument("--audio-root", help="keys are paths relative to this folder (default: as given)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--skip-bad", action="store_true", help="report unusable files and go on, instead of failing")
    add_vad_args(parser, default=False)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    retain_freed_memory()  # activations reused without page faults: faster, at the cost of keeping peak memory
    model = open_embedder(args.model)
    vad = vad_from_args(args)
    keys, waves, bad = [], [], 0
    for path in args.audio:
        try:
            waves.append(model.load(path, vad=vad))
        except AudioError as err:
            if not args.skip_bad:
                raise
            bad += 1
            print(f"skipped: {err}", file=sys.stderr)
            continue
        keys.append(os.path.relpath(path, args.audio_root) if args.audio_root else path)
    matrix = model.embed_waveforms(waves, args.batch_size) if waves else np.zeros((0, model.embedding_dim), np.float32)
    if args.output:
        save_embeddings(args.output, keys, matrix, {"model": model.fingerprint, "checkpoint": str(args.model),
                                                    "vad": vad.to_dict() if vad else None})
        skipped = f"; skipped {bad}" if bad else ""
        print(f"wrote {len(keys)} embeddings ({model.embedding_dim}-d) to {args.output}{skipped}")
    else:
        for key, row in zip(keys, matrix):
            print(f"{key}  [ {' '.join(f'{v:.6g}' for v in row)} ]")
    return 1 if bad and not keys else 0
