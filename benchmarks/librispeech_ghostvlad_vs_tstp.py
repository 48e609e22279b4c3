"""GhostVLAD vs temporal statistics pooling at equal CPU budget, on real speech.

Data: ``../shared/data/librispeech-train-clean-100-subset`` (251 speakers x one
recording of 1.6-17 s; speaker = file-name prefix before the first ``-``).

1. ``prepare``: hold out ``--heldout`` speakers (seeded). The other speakers'
   recordings are the training list (crops from within each recording are the
   training examples). Each held-out recording is cut into consecutive
   non-overlapping ``--segment-seconds`` pieces (remainders dropped; saved as
   WAV under WORK/heldout); trials pair pieces: all same-speaker pairs (two
   pieces of one recording: same session and channel) and ``--nontarget-ratio``
   times as many random different-speaker pairs.
2. ``train``: for each config, ``python -m speakervlad.train`` with the same
   overrides and a wall-clock budget ``train.max_minutes`` (the run checkpoints
   and stops when it runs out). The fp32 matmul peak is measured just before
   each run, to show whether the machine was equally loaded for both.
3. ``eval``: EER on the held-out trials of the untrained model (same seed), of
   each run's last checkpoint, and of each run's checkpoint after the last epoch
   all runs completed (equal training, whatever the machine's load). Prints a table.

    python benchmarks/librispeech_ghostvlad_vs_tstp.py --stage all --minutes 20 --width 8
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

from speakervlad.checkpoint import load_checkpoint
from speakervlad.config import apply_overrides, load_config
from speakervlad.data.heldout import cut_segments, make_trials, split_speakers
from speakervlad.data.lists import build_list, write_list
from speakervlad.models import build_model
from speakervlad.scoring.trials import write_trials
from speakervlad.train.experiment import MetricsLog, latest_checkpoint, list_checkpoints
from speakervlad.train.validation import Validator

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "librispeech-train-clean-100-subset"
PATTERN = r"^(?P<speaker>\d+)-"


def matmul_peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.matmul(a, b)
    best = min(_timed(lambda: torch.matmul(a, b)) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def overrides(args: argparse.Namespace) -> list[str]:
    """The settings both runs share (the configs differ only in pooling)."""
    return [
        f"model.trunk_width={args.width}", f"data.batch_size={args.batch}",
        f"data.crop_seconds={args.crop}", f"data.utterances_per_speaker={args.per_speaker}",
        "data.num_workers=0", "augment.noise_prob=0", "augment.reverb_prob=0",
        "augment.speed_perturb=false", f"train.epochs={args.epochs}", f"train.max_minutes={args.minutes}",
        "optim.warmup_epochs=1", f"head.margin_ramp_start_epoch={args.epochs // 4}",
        f"head.margin_ramp_end_epoch={args.epochs // 2}", f"train.seed={args.seed}",
        "train.keep_checkpoints=0",  # every epoch kept: the equal-epoch comparison needs the common one
        *args.overrides,
    ]


def prepare(args: argparse.Namespace) -> None:
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    utts = build_list(args.data, pattern=PATTERN)
    train, heldout = split_speakers(utts, args.heldout, seed=args.seed)
    write_list(work / "train.tsv", train)
    segments = cut_segments(heldout, work / "heldout", args.segment_seconds)
    speakers = {u.speaker for u in segments}
    targets = sum(n * (n - 1) // 2 for n in (sum(u.speaker == s for u in segments) for s in speakers))
    trials = make_trials(segments, targets * (1 + args.nontarget_ratio), seed=args.seed,
                         target_fraction=1 / (1 + args.nontarget_ratio))
    write_trials(work / "trials.txt", trials)
    summary = {
        "train_speakers": len({u.speaker for u in train}), "train_recordings": len(train),
        "heldout_speakers": len({u.speaker for u in heldout}), "segments": len(segments),
        "segment_speakers": len(speakers), "targets": sum(t[2] for t in trials),
        "nontargets": sum(not t[2] for t in trials),
    }
    (work / "prepare.json").write_text(json.dumps(summary, indent=1))
    print("prepared:", json.dumps(summary))


def train(args: argparse.Namespace) -> None:
    for name in args.configs:
        exp = args.work / f"exp_{name}"
        cmd = [sys.executable, "-m", "speakervlad.train", "--config", name, "--data",
               str(args.work / "train.tsv"), "--exp", str(exp), "--device", "cpu", *overrides(args)]
        peak = matmul_peak_gflops()
        print(f"[{time.strftime('%Y-%m-%d %H:%M')}] matmul peak {peak:.1f} GFLOP/s; running:\n  "
              + shlex.join(["python", *cmd[1:]]), flush=True)
        start = time.monotonic()
        subprocess.run(cmd, check=True)
        seconds = time.monotonic() - start
        (exp / "benchmark.json").write_text(json.dumps(
            {"matmul_peak_gflops_before": peak, "matmul_peak_gflops_after": matmul_peak_gflops(),
             "wall_seconds": seconds, "command": shlex.join(["python", *cmd[1:]])}, indent=1))


def evaluate(args: argparse.Namespace) -> None:
    validator = Validator(args.work / "trials.txt", args.work / "heldout")
    print(f"held-out trials: {len(validator.trials)} ({validator.trials.n_target} target, "
          f"{validator.trials.n_nontarget} non-target), {len(validator.paths)} segments of "
          f"{args.segment_seconds:g} s")
    # also compare at equal training (the last epoch every run completed), free of load differences
    finished = {name: {epoch: path for epoch, step, path in list_checkpoints(args.work / f"exp_{name}") if step == 0}
                for name in args.configs}
    common = min(max(epochs, default=0) for epochs in finished.values())
    at_common = f"EER @ epoch {common}"
    header = f"{'config':<22}{'untrained EER':>14}{'trained EER':>12}{at_common:>17}{'epochs':>8}" \
             f"{'steps':>7}{'samples/s':>10}{'minutes':>8}{'peak GFLOP/s before/after':>27}"
    print(header)
    print("-" * len(header))
    for name in args.configs:
        exp = args.work / f"exp_{name}"
        config = apply_overrides(load_config(name), overrides(args))
        torch.manual_seed(config.train.seed)  # the trainer's initial weights
        untrained = validator(build_model(config.model))
        ckpt = load_checkpoint(latest_checkpoint(exp))
        trained = validator(ckpt.build_model())
        at_epoch = finished[name].get(common)  # missing if pruned by an older run's keep_checkpoints
        equal = validator(load_checkpoint(at_epoch).build_model()) if at_epoch else float("nan")
        state = ckpt.training_state
        steps = state["epochs_done"] * state["steps_per_epoch"] + state["step"]
        rows = MetricsLog(exp / "metrics.csv").rows()
        seconds = sum(float(r["seconds"]) for r in rows)
        rate = sum(float(r["samples_per_s"]) * float(r["seconds"]) for r in rows) / max(seconds, 1e-9)
        info = json.loads((exp / "benchmark.json").read_text())
        epochs = state["epochs_done"] + state["step"] / state["steps_per_epoch"]
        print(f"{name:<22}{untrained:>14.2%}{trained:>12.2%}{equal:>17.2%}{epochs:>8.2f}{steps:>7d}{rate:>10.1f}"
              f"{info['wall_seconds'] / 60:>8.1f}"
              f"{info['matmul_peak_gflops_before']:>20.1f} / {info['matmul_peak_gflops_after']:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=["prepare", "train", "eval", "all"], default="all")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=Path("/tmp/librispeech_ghostvlad_vs_tstp"))
    parser.add_argument("--configs", nargs="+", default=["resnet34_ghostvlad", "resnet34_tstp"])
    parser.add_argument("--minutes", type=float, default=20.0, help="wall-clock budget per run")
    parser.add_argument("--width", type=int, default=8, help="ResNet-34 base width (reference 32)")
    parser.add_argument("--epochs", type=int, default=8, help="schedule length (the budget may stop earlier)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--crop", type=float, default=2.0, help="training crop seconds")
    parser.add_argument("--per-speaker", type=int, default=4, help="crops per speaker per epoch")
    parser.add_argument("--heldout", type=int, default=51)
    parser.add_argument("--segment-seconds", type=float, default=2.0)
    parser.add_argument("--nontarget-ratio", type=int, default=9, help="non-target trials per target trial")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("overrides", nargs="*", help="extra config overrides for both runs, e.g. optim.optimizer=adam")
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"{args.data}: not found (the LibriSpeech subset lives in ../shared/data)")
    if args.stage in ("prepare", "all"):
        prepare(args)
    if args.stage in ("train", "all"):
        train(args)
    if args.stage in ("eval", "all"):
        evaluate(args)


if __name__ == "__main__":
    main()
