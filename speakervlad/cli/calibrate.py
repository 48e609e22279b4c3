"""``speakervlad calibrate``: fit score -> LLR calibration on a development trial list."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ConfigError
from ..scoring.calibration import DEFAULT_PRIOR, fit_calibration
from ..scoring.scorefile import read_scores
from ..scoring.trials import read_trials

EXAMPLE_FARS = (0.01, 0.001)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "calibrate", help="fit linear score -> LLR calibration on development trials",
        description="Fit llr = slope * score + offset by prior-weighted logistic regression and write "
        "it as JSON (-o) and/or into a checkpoint (--model, --into), where verification uses it.")
    parser.add_argument("--trials", required=True, type=Path, help="development trial list")
    parser.add_argument("--scores", required=True, type=Path, help="raw scores of those trials")
    parser.add_argument("-o", "--output", type=Path, help="calibration JSON to write")
    parser.add_argument("--model", type=Path, help="checkpoint to store the calibration in (in place "
                        "unless --into)")
    parser.add_argument("--into", type=Path, metavar="OUT_PT", help="write the calibrated checkpoint here")
    parser.add_argument("--prior", type=float, default=DEFAULT_PRIOR,
                        help=f"target prior the regression is weighted at (default {DEFAULT_PRIOR})")
    parser.add_argument("--scoring", default="cosine",
                        help="how the scores were made, as `speakervlad score` names it (default cosine; "
                        "e.g. asnorm300, cosine+mean)")
    parser.add_argument("--skip-missing", action="store_true", help="drop trials that have no score")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.output is None and args.model is None:
        raise ConfigError("say where the calibration goes: -o calib.json and/or --model CKPT [--into OUT.pt]")
    if args.into is not None and args.model is None:
        raise ConfigError("--into needs --model, the checkpoint to copy")
    trials = read_trials(args.trials)
    kept, scores = read_scores(args.scores).align(trials, args.skip_missing)
    calibration = fit_calibration(scores, kept.labels, args.prior, args.scoring, kept.name)
    dev = calibration.dev
    print(f"llr = {calibration.slope:.4f} * score + {calibration.offset:+.4f}  (trained at prior "
          f"{calibration.prior:g} on {calibration.n_target} target / {calibration.n_nontarget} "
          f"non-target trials of {kept.name})")
    print(f"dev: EER {100 * dev['eer']:.2f}%  Cllr {dev['cllr']:.4f}  minCllr {dev['min_cllr']:.4f}  "
          f"actDCF {dev[f'act_dcf_{args.prior:g}']:.4f}  minDCF {dev[f'min_dcf_{args.prior:g}']:.4f} "
          f"(p={args.prior:g})")
    print("thresholds:")
    for far in EXAMPLE_FARS:
        if calibration.far_table[-1][0] <= far:
            print("  " + calibration.decision_threshold(far=far)[1])
    print("  " + calibration.decision_threshold(prior=args.prior)[1])
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(calibration.to_dict(), indent=1) + "\n")
        print(f"wrote {args.output}")
    if args.model:
        from ..checkpoint import set_calibration  # torch, only to write into a checkpoint

        print(f"calibrated checkpoint: {set_calibration(args.model, calibration.to_dict(), args.into)}")
    return 0
