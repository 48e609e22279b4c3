"""``speakervlad train`` and ``speakervlad average``.

One process::

    speakervlad train --config resnet34_ghostvlad --data DATA --exp exp/run1 optim.lr=0.05

Many (one machine, or many with ``--nnodes`` and a rendezvous endpoint)::

    torchrun --nproc_per_node=4 -m speakervlad.train --config ... --data ... --exp ...

Continue a stopped run (Ctrl-C, SIGTERM or ``train.max_minutes`` save a checkpoint first)::

    speakervlad train --exp exp/run1 --resume
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..config import apply_overrides, dump_config, load_config
from ..data.lists import build_list, read_list, write_list
from ..data.readable import check_readable
from ..errors import ConfigError
from ..train import distributed as ddp
from ..train.average import average_last
from ..train.experiment import check_experiment, list_checkpoints
from ..train.trainer import Trainer
from ..train.validation import Validator

logger = logging.getLogger(__name__)

TRAIN_LIST, UNREADABLE = "train.tsv", "unreadable.txt"


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train", help="train a speaker-embedding model (also under torchrun)",
        description="Train a model. Writes EXP/config.yaml, speakers.txt, train.tsv, unreadable.txt, "
        "metrics.csv and checkpoints/epoch_NNN.pt. Ctrl-C or SIGTERM saves a checkpoint and stops; "
        "--resume continues exactly.",
    )
    add_train_arguments(train)
    train.set_defaults(func=run_train)

    average = subparsers.add_parser("average", help="average the last N epoch checkpoints of a run")
    average.add_argument("--exp", required=True, type=Path, help="experiment folder")
    average.add_argument("--last", required=True, type=int, help="number of last epochs to average")
    average.add_argument("-o", "--output", type=Path, help="output checkpoint (default EXP/avg_lastN.pt)")
    average.set_defaults(func=run_average)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="config YAML or named config (default with --resume: EXP/config.yaml)")
    parser.add_argument("--data", type=Path,
                        help="training list (TSV from write_list) or corpus folder "
                        "(VoxCeleb, Kaldi dir, speaker/.../*.wav); with --resume EXP/train.tsv is used")
    parser.add_argument("--pattern", help=r"regex naming the speaker in flat folders, e.g. '^(?P<speaker>\d+)-'")
    parser.add_argument("--exp", required=True, type=Path, help="experiment folder")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in EXP")
    parser.add_argument("--force", action="store_true",
                        help="resume with a changed config, or start over in a folder with checkpoints")
    parser.add_argument("--val-trials", type=Path, help="trial list for validation EER (train.validate_every)")
    parser.add_argument("--val-root", type=Path, help="folder the validation trial keys are relative to")
    parser.add_argument("--device", default="auto", help="auto (GPU when available), cpu or cuda")
    parser.add_argument("--jobs", type=int, default=4, help="threads checking that audio files are readable")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. optim.lr=0.01 data.batch_size=32")


def run_train(args: argparse.Namespace) -> int:
    env = ddp.init_distributed(args.device)
    if not env.is_main:
        logging.getLogger().setLevel(logging.WARNING)
    try:
        return _train(args, env)
    finally:
        ddp.cleanup(env)


def _train(args: argparse.Namespace, env: ddp.DistEnv) -> int:
    exp: Path = args.exp
    source = args.config or (exp / "config.yaml" if args.resume else None)
    if source is None:
        raise ConfigError("--config is needed (a YAML file or a named config such as resnet34_ghostvlad)")
    config = apply_overrides(load_config(source), args.overrides)
    check_experiment(exp, config, args.resume, args.force)
    if (args.val_trials is None) != (args.val_root is None):
        raise ConfigError("--val-trials and --val-root go together")
    ddp.barrier(env)  # every process has checked before the main one writes
    if env.is_main:
        exp.mkdir(parents=True, exist_ok=True)
        if not args.resume:
            for _, _, old in list_checkpoints(exp):  # only with --force (else refused above)
                old.unlink()
            _write_training_list(args, exp, config.data.min_seconds)
        dump_config(config, exp / "config.yaml")
    ddp.barrier(env)
    if args.resume and args.data is not None:
        logger.info("resuming: training on %s (--data is not read again)", exp / TRAIN_LIST)
    utts = read_list(exp / TRAIN_LIST)
    validator = None
    if args.val_trials is not None and env.is_main:
        validator = Validator(args.val_trials, args.val_root)
        if config.train.validate_every <= 0:
            logger.warning("--val-trials given but train.validate_every is 0: set train.validate_every=K "
                           "to validate every K epochs")
    provenance = {"data": str(args.data or exp / TRAIN_LIST), "utterances": len(utts),
                  "config_source": str(source), "overrides": list(args.overrides)}
    trainer = Trainer(config, exp, utts, env=env, validator=validator, provenance=provenance)
    result = trainer.fit(resume=args.resume)
    if env.is_main:
        if result.finished:
            plural = "s" if result.epochs_done != 1 else ""
            print(f"trained {result.epochs_done} epoch{plural}; checkpoints in {exp / 'checkpoints'}, "
                  f"metrics in {exp / 'metrics.csv'}")
        else:
            where = f"epoch {result.epochs_done + 1}, step {result.step}" if result.step else \
                f"after epoch {result.epochs_done}"
            print(f"stopped ({result.stopped_by}) {where}; saved {result.checkpoint}; "
                  f"continue with: speakervlad train --exp {exp} --resume")
    return 0


def _write_training_list(args: argparse.Namespace, exp: Path, min_seconds: float) -> None:
    if args.data is None:
        raise ConfigError("--data is needed: a training list (TSV) or a corpus folder")
    utts = build_list(args.data, pattern=args.pattern)
    good = check_readable(utts, exp / UNREADABLE, min_seconds=min_seconds, jobs=args.jobs)
    write_list(exp / TRAIN_LIST, good)
    logger.info("training list: %d utterances of %d speakers (%s)", len(good),
                len({u.speaker for u in good}), exp / TRAIN_LIST)


def run_average(args: argparse.Namespace) -> int:
    out = average_last(args.exp, args.last, args.output)
    print(f"averaged the last {args.last} epoch checkpoints of {args.exp} into {out}")
    return 0
