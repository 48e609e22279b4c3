"""`speakervlad synth`: write the built-in synthetic multi-speaker corpus."""
from __future__ import annotations

import argparse
import os
import time

from ..data.synth_corpus import CorpusSpec, generate_corpus


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth", help="generate a synthetic speech-like multi-speaker corpus (the built-in default data)",
        description="Write OUT/<speaker>/uttNNNN.wav (16-bit PCM), speakers.tsv and README.txt. "
                    "Synthetic: it proves the pipeline learns, not accuracy on real speech. "
                    "Re-running with the same settings completes an interrupted run.")
    parser.add_argument("--out", required=True, help="output directory (new, empty, or an interrupted run)")
    parser.add_argument("--speakers", type=int, default=40, help="number of speakers (default 40)")
    parser.add_argument("--utterances", type=int, default=20, help="utterances per speaker (default 20)")
    parser.add_argument("--seconds-min", type=float, default=2.0, help="shortest utterance (default 2.0)")
    parser.add_argument("--seconds-max", type=float, default=4.0, help="longest utterance (default 4.0)")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed; the same seed gives the same bytes")
    parser.add_argument("--sample-rate", type=int, default=16000, help="Hz (default 16000)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="worker processes (default: all cores); results do not depend on it")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec = CorpusSpec(speakers=args.speakers, utterances=args.utterances, seconds_min=args.seconds_min,
                      seconds_max=args.seconds_max, seed=args.seed, sample_rate=args.sample_rate)
    start = time.perf_counter()
    done = generate_corpus(args.out, spec, jobs=args.jobs)
    print(f"synth: wrote {done['written']} files ({done['seconds'] / 60:.1f} min of audio), "
          f"kept {done['skipped']} already there, in {time.perf_counter() - start:.1f} s: "
          f"{args.speakers} speakers x {args.utterances} utterances in {args.out}")
    return 0
