#!/usr/bin/env python3
"""Write the recipe's lists: training list, AS-norm cohort, trial lists and the audio they need.

    local/prepare_lists.py --train-root vox2/dev/wav --vox1 vox1/test/wav --vox1 vox1/dev/wav \
        --trials-dir data/trials --out data/lists

Writes to OUT:

- ``train.tsv``: every utterance of the training corpus (VoxCeleb layout);
- ``cohort.tsv``: ``--cohort-per-speaker`` utterances of each training speaker
  (the AS-norm cohort: impostors for every VoxCeleb1 speaker);
- ``trials/<name>.txt``: each official trial list found in ``--trials-dir``,
  after checking that every utterance it names exists in a ``--vox1`` folder;
- ``eval.tsv``: the utterances the trial lists need (key as in the trial
  lists, path in whichever ``--vox1`` folder holds it).
"""
from __future__ import annotations

import argparse
import shutil
import sys
from collections import defaultdict
from pathlib import Path

from speakervlad.data.lists import Utterance, build_list, write_list
from speakervlad.errors import SpeakerVladError
from speakervlad.scoring.trials import read_trials

#: official VoxCeleb1 trial lists, in table order
TRIAL_LISTS = ["veri_test.txt", "veri_test2.txt", "list_test_all.txt", "list_test_all2.txt",
               "list_test_hard.txt", "list_test_hard2.txt"]
SHOWN = 5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-root", required=True, type=Path, help="training corpus (VoxCeleb layout)")
    parser.add_argument("--vox1", action="append", required=True, type=Path,
                        help="VoxCeleb1 folder(s) the trial keys are relative to (repeat: test, dev)")
    parser.add_argument("--trials-dir", required=True, type=Path, help="folder with the official trial lists")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--cohort-per-speaker", type=int, default=1, help="cohort utterances per speaker")
    args = parser.parse_args()
    try:
        return prepare(args)
    except SpeakerVladError as err:
        print(f"prepare_lists: error: {err}", file=sys.stderr)
        return 1


def prepare(args: argparse.Namespace) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    train = build_list(args.train_root, kind="voxceleb")
    write_list(args.out / "train.tsv", train)
    print(f"{args.out / 'train.tsv'}: {len(train)} utterances of {len({u.speaker for u in train})} speakers")
    cohort = cohort_of(train, args.cohort_per_speaker)
    write_list(args.out / "cohort.tsv", cohort)
    print(f"{args.out / 'cohort.tsv'}: {len(cohort)} utterances (AS-norm cohort)")

    audio: dict[str, str] = {}
    for root in args.vox1:  # earlier folders win, as on the command line
        for utt in build_list(root, kind="voxceleb"):
            audio.setdefault(utt.key, utt.path)
    found = [name for name in TRIAL_LISTS if (args.trials_dir / name).is_file()]
    if not found:
        print(f"prepare_lists: no trial list in {args.trials_dir} (expected any of {', '.join(TRIAL_LISTS)}); "
              "run stage 1 to download them", file=sys.stderr)
        return 1
    (args.out / "trials").mkdir(exist_ok=True)
    needed: set[str] = set()
    for name in found:
        keys = set(read_trials(args.trials_dir / name).keys.tolist())
        missing = sorted(keys - audio.keys())
        if missing:
            print(f"prepare_lists: {name}: {len(missing)} of {len(keys)} utterances are not in "
                  f"{' or '.join(map(str, args.vox1))} (e.g. {', '.join(missing[:SHOWN])}); "
                  "is VoxCeleb1 complete? (stage 1 counts it)", file=sys.stderr)
            return 1
        shutil.copyfile(args.trials_dir / name, args.out / "trials" / name)
        needed |= keys
        print(f"{args.out / 'trials' / name}: {len(keys)} utterances, all present")
    evaluation = [Utterance(key, key.split("/")[0], audio[key]) for key in sorted(needed)]
    write_list(args.out / "eval.tsv", evaluation)
    print(f"{args.out / 'eval.tsv'}: {len(evaluation)} utterances to embed for {len(found)} trial lists")
    return 0


def cohort_of(utts: list[Utterance], per_speaker: int) -> list[Utterance]:
    """The first ``per_speaker`` utterances (in key order) of each speaker."""
    by_speaker: dict[str, list[Utterance]] = defaultdict(list)
    for utt in sorted(utts, key=lambda u: u.key):
        if len(by_speaker[utt.speaker]) < per_speaker:
            by_speaker[utt.speaker].append(utt)
    return [utt for speaker in sorted(by_speaker) for utt in by_speaker[speaker]]


if __name__ == "__main__":
    sys.exit(main())
