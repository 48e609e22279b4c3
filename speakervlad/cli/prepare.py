"""``speakervlad prepare``: a training list and held-out verification trials from a corpus.

Speakers are split (``--heldout N`` random speakers, or ``P%`` of them, are held out); the training
speakers' files go to ``OUT/train.tsv``, the held-out ones to
``OUT/heldout.tsv`` with trials between them in ``OUT/trials.txt`` (VoxCeleb
format; keys are the list keys). When a held-out speaker has fewer than two
recordings (the LibriSpeech subset has one each), or ``--segment-seconds`` is
given, held-out recordings are first cut into segments under ``OUT/segments/``
so that target trials exist. Unusable files are left out and listed in
``OUT/unreadable.txt``::

    speakervlad prepare --data corpus/ --out data/ --heldout 8 --trials 2000
    speakervlad prepare --data flac/ --pattern '^(?P<speaker>\\d+)-' --out data/ --heldout 30
"""
from __future__ import annotations

import argparse
import json
import logging
from collections import Counter
from pathlib import Path

from ..data.heldout import all_pairs, cut_segments, make_trials, split_speakers
from ..data.lists import build_list, write_list
from ..data.readable import check_readable
from ..errors import ConfigError
from ..scoring.trials import write_trials

logger = logging.getLogger(__name__)

TRAIN_LIST, HELDOUT_LIST, TRIALS, SEGMENTS, UNREADABLE, SUMMARY = (
    "train.tsv", "heldout.tsv", "trials.txt", "segments", "unreadable.txt", "prepare.json")
DEFAULT_SEGMENT_SECONDS = 3.0
ALL = "all"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare", help="training list + held-out speakers' trials from a corpus folder or list",
        description="Write OUT/train.tsv, and with --heldout N also OUT/heldout.tsv and OUT/trials.txt "
        "(VoxCeleb format) for N held-out speakers.")
    parser.add_argument("--data", required=True, type=Path,
                        help="corpus folder (speaker/.../*.wav|flac, VoxCeleb, Kaldi dir) or list file")
    parser.add_argument("--pattern", help=r"regex naming the speaker in flat folders, e.g. '^(?P<speaker>\d+)-'")
    parser.add_argument("--kind", default="auto", choices=["auto", "voxceleb", "kaldi", "folder"],
                        help="corpus layout (default: detected)")
    parser.add_argument("--out", required=True, type=Path, help="folder to write the lists to")
    parser.add_argument("--heldout", type=_speaker_count, default=0,
                        help="speakers held out for trials: a number, or a share such as 20%% (default 0)")
    parser.add_argument("--trials", type=_trial_count, default=2000,
                        help="trials to draw (default 2000), or 'all': every pair of held-out utterances")
    parser.add_argument("--target-fraction", type=float, default=0.5,
                        help="share of target trials among the drawn ones (not with --trials all)")
    parser.add_argument("--segment-seconds", type=float,
                        help="cut held-out recordings into segments this long (default: only when a "
                        f"held-out speaker has one recording, then {DEFAULT_SEGMENT_SECONDS:g} s)")
    parser.add_argument("--min-seconds", type=float, default=0.5, help="shorter files are left out")
    parser.add_argument("--seed", type=int, default=0, help="seed of the speaker split and the trials")
    parser.add_argument("--jobs", type=int, default=4, help="threads checking that files are readable")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    utts = build_list(args.data, kind=args.kind, pattern=args.pattern)
    args.out.mkdir(parents=True, exist_ok=True)
    utts = check_readable(utts, args.out / UNREADABLE, min_seconds=args.min_seconds, jobs=args.jobs)
    speakers = len({u.speaker for u in utts})
    heldout = args.heldout if isinstance(args.heldout, int) else max(2, round(args.heldout * speakers))
    train, held = split_speakers(utts, heldout, seed=args.seed)
    write_list(args.out / TRAIN_LIST, train)
    summary = {"source": str(args.data), "train_speakers": len({u.speaker for u in train}),
               "train_utterances": len(train)}
    print(f"{args.out / TRAIN_LIST}: {summary['train_utterances']} utterances of "
          f"{summary['train_speakers']} speakers")
    if heldout:
        per_speaker = Counter(u.speaker for u in held)
        seconds = args.segment_seconds
        if seconds is None and min(per_speaker.values()) < 2:
            seconds = DEFAULT_SEGMENT_SECONDS
            logger.info("a held-out speaker has a single recording: cutting held-out recordings "
                        "into %g s segments", seconds)
        if seconds is not None:
            held = cut_segments(held, args.out / SEGMENTS, seconds)
            if not held:
                raise ConfigError(f"no held-out recording is {seconds:g} s long; lower --segment-seconds")
        if args.trials == ALL:
            trials = all_pairs(held)
        else:
            trials = make_trials(held, args.trials, seed=args.seed, target_fraction=args.target_fraction)
        write_list(args.out / HELDOUT_LIST, held)
        write_trials(args.out / TRIALS, trials)
        targets = sum(t for _, _, t in trials)
        summary.update(heldout_speakers=len({u.speaker for u in held}), heldout_utterances=len(held),
                       segment_seconds=seconds, trials=len(trials), target_trials=targets)
        print(f"{args.out / HELDOUT_LIST}: {len(held)} utterances of {summary['heldout_speakers']} "
              f"held-out speakers" + (f" ({seconds:g} s segments)" if seconds else ""))
        print(f"{args.out / TRIALS}: {len(trials)} trials ({targets} target, {len(trials) - targets} non-target)")
    (args.out / SUMMARY).write_text(json.dumps(summary, indent=1) + "\n")
    return 0


def _trial_count(text: str) -> int | str:
    if text == ALL:
        return ALL
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of trials or 'all', got {text!r}") from None
    if count <= 0:
        raise argparse.ArgumentTypeError(f"the number of trials must be positive, got {count}")
    return count


def _speaker_count(text: str) -> int | float:
    """``N`` speakers, or ``P%`` of them (returned as the fraction P / 100)."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of speakers or a share like 20%, got {text!r}") from None
    if isinstance(value, float) and not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"a share of held-out speakers is under 100%, got {text!r}")
    return value  # a count is checked against the speakers by split_speakers
