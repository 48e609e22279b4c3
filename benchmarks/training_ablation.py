"""Ablation: where speakervlad's trainer and a minimal training loop part, on real speech.

The yardstick is ``../shared/reference/minimal_loop.py``: ResNet-34 (width 16) +
GhostVLAD (K=8, G=2) + a 256-d embedding with BatchNorm + AAM-softmax (m 0.2,
s 30) on 80-bin fbank, Adam 2e-3, batches of 64 random 2 s crops. Row A is that
recipe in ``speakervlad train`` with every difference set the loop's way; each
further row switches one difference to the trainer's way, alone:

    B  no normalisation after the embedding layer (the trainer before the fix)
    C  repeated draws of a recording get the same crop (the trainer before the fix)
    D  a 1x1 projection (+ReLU) to 256-d features before VLAD (the loop: raw 1280-d frames)
    E  orthogonal cluster centres (the loop: N(0, 0.1^2))
    F  crop-level fbank mean normalisation (the loop: utterance-level, before cropping)
    G  the speaker-balanced sampler, epochs of 16 draws per speaker (the loop: uniform, with replacement)
    H  all of D-G: the trainer's defaults after the fix
    I  all of B-G: the trainer before the fix
    J  the trunk in bf16 autocast (optim.precision=bf16; a speed option, not a difference)
    K  A with the loop's classifier initialisation N(0, 0.01^2) instead of Xavier's (a
       difference found after A-J were made: A keeps the trainer's, so K moves towards the loop)

Rows L-P walk from J towards ``thin_resnet34_ghostvlad`` (the reference system), one of its
differences at a time, to find which of them slows its learning per step:

    L  the thin ResNet-34 trunk (7x7 stem, bottleneck stages 48-512, /16 in time), on the same fbank
    M  thin's input: the 257-bin linear spectrogram, each frame standardised across frequency
    N  thin's head: softmax (the loop: AAM-softmax m 0.2 s 30)
    O  thin's sizes: a 1x1 projection (+ReLU) to 512-d before VLAD, a 512-d embedding with ReLU
    P  L with every residual block starting as its shortcut (train.zero_init_residual=true)

Differences that are not config options (C, E, F, G, K) are patched into the trainer
from here; F relies on the subset's one recording per speaker (label = recording).

Data and trials (:mod:`librispeech_heldout`): the loop's split of
``../shared/data/librispeech-train-clean-100-subset`` (51 speakers held out,
200 training recordings); all pairs of the held-out 3 s pieces (the loop's own
trials, 282 target / 16,189 non-target) and of the recording halves (longer
test material; 51 targets, so coarse). Every run trains ``--steps`` steps; two
seeds by default.

    python benchmarks/training_ablation.py --work /tmp/ablation --steps 60 --parallel 2
    python benchmarks/training_ablation.py --work /tmp/ablation --table      # the table so far
    python benchmarks/training_ablation.py --work /tmp/shipped --configs thin_resnet34_ghostvlad \
        resnet34_ghostvlad resnet34_tstp recipes/mini/conf/real.yaml      # shipped configs, loop-trained

``--configs`` trains each config's own model and head with the loop's batches and optimiser
(no patches), to check that every shipped model learns per step as fast as the loop does.
Overrides apply after the loop's settings, so ``optim.lr=0.001`` trains a config with Adam at
1e-3 (the width-32 trunks need half the loop's LR: README, "The shipped configs, per step").

Each run leaves WORK/runs/ROW_sSEED/result.json; finished runs are not redone.
``--loop-seconds S`` also runs the loop itself for S seconds (time-budgeted, so its
step count is reported, not set).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from librispeech_heldout import DEFAULT_DATA, LOOP, evaluate, prepare, training_utterances, trial_lists

from speakervlad.config import apply_overrides, load_config
from speakervlad.data.sampler import SpeakerBalancedSampler
from speakervlad.train.trainer import Trainer

#: the loop's model and head in speakervlad's terms (the issue's config), with its VLAD over raw frames
LOOP_MODEL = [
    "model.frontend.name=fbank", "model.frontend.n_mels=80", "model.frontend.normalize=mean",
    "model.trunk=resnet34", "model.trunk_width=16",
    "model.pooling.name=ghostvlad", "model.pooling.clusters=8", "model.pooling.ghost_clusters=2",
    "model.pooling.feature_dim=0", "model.embedding_dim=256", "model.embedding_activation=none",
    "model.embedding_norm=batchnorm",
    "head.name=aam_softmax", "head.margin=0.2", "head.scale=30.0",
    "head.margin_ramp_start_epoch=0", "head.margin_ramp_end_epoch=0",
]
#: the loop's batches and optimiser
LOOP_TRAINING = [
    "data.crop_seconds=2.0", "data.batch_size=64", "data.num_workers=0", "data.utterances_per_speaker=16",
    "data.reverse_concat=false",
    "augment.noise_prob=0", "augment.reverb_prob=0", "augment.speed_perturb=false", "augment.specaug_prob=0",
    "optim.optimizer=adam", "optim.lr=0.002", "optim.weight_decay=1e-5", "optim.scheduler=constant",
    "train.epochs=1000", "train.keep_checkpoints=1", "train.max_minutes=0", "train.fit_to_budget=false",
]
LOOP_RECIPE = LOOP_MODEL + LOOP_TRAINING
#: rows "config:NAME" train a shipped config's model and head with the loop's batches and optimiser
CONFIG_ROW = "config:"
#: loop-side switches that are patched, not configured
LOOP_PATCHES = {"fresh_crops", "normal_centres", "utterance_mean", "uniform_sampler"}
#: a loop-side switch that row A leaves the trainer's way (found after the first table was made)
SMALL_HEAD = "small_head"

#: row J's change (rows L-P start from J), and row L's
J_OVERRIDES = ["optim.precision=bf16"]
THIN_TRUNK = [*J_OVERRIDES, "model.trunk=thin_resnet34"]

ROWS: dict[str, tuple[str, list[str], set[str]]] = {
    # name: (description, extra overrides, loop-side patches *removed*, or SMALL_HEAD *added*)
    "A": ("the loop's recipe in the trainer", [], set()),
    "B": ("A + no embedding normalisation", ["model.embedding_norm=none"], set()),
    "C": ("A + repeated crops", [], {"fresh_crops"}),
    "D": ("A + 1x1 projection to 256-d before VLAD", ["model.pooling.feature_dim=256"], set()),
    "E": ("A + orthogonal centres", [], {"normal_centres"}),
    "F": ("A + crop-level mean normalisation", [], {"utterance_mean"}),
    "G": ("A + speaker-balanced sampler", [], {"uniform_sampler"}),
    "H": ("trainer defaults after the fix (A + D-G)", ["model.pooling.feature_dim=256"],
          {"normal_centres", "utterance_mean", "uniform_sampler"}),
    "I": ("trainer before the fix (A + B-G)", ["model.pooling.feature_dim=256", "model.embedding_norm=none"],
          set(LOOP_PATCHES)),
    "J": ("A + the trunk in bf16 (optim.precision=bf16)", J_OVERRIDES, set()),
    "K": ("A - Xavier classifier weights: N(0, 0.01^2), as the loop", [], {SMALL_HEAD}),
    "L": ("J + the thin ResNet-34 trunk", THIN_TRUNK, set()),
    "M": ("J + thin's input: 257-bin linear spectrogram, frames standardised",
          [*J_OVERRIDES, "model.frontend.name=spectrogram", "model.frontend.normalize=frame",
           "model.frontend.compression=none"], set()),
    "N": ("J + thin's head: softmax", [*J_OVERRIDES, "head.name=softmax"], set()),
    "O": ("J + thin's sizes: 512-d projection before VLAD, 512-d ReLU embedding",
          [*J_OVERRIDES, "model.pooling.feature_dim=512", "model.embedding_dim=512",
           "model.embedding_activation=relu"], set()),
    "P": ("L + residual blocks start as their shortcut (train.zero_init_residual)",
          [*THIN_TRUNK, "train.zero_init_residual=true"], set()),
}


# ----------------------------------------------------------------------------- patches
class UniformSampler(SpeakerBalancedSampler):
    """The loop's sampler: every draw uniform over the items, with replacement."""

    def epoch_indices(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.epoch])
        items = sum(len(group) for group in self._groups)
        order = rng.integers(0, items, self.num_samples * self.world_size)
        return order[self.rank :: self.world_size]


def apply_patches(trainer: Trainer, loop_side: set[str], seed: int, losses: list[float]) -> Callable[[], None]:
    """Set the differences in ``loop_side`` the loop's way and record the step losses in
    ``losses``; returns what undoes the frontend patch (for evaluation)."""
    dataset, model = trainer.dataset, trainer.model
    if "fresh_crops" not in loop_side:  # the trainer before the fix: the crop depends on the item only
        dataset.generator = lambda index, draw: np.random.default_rng([dataset.seed, dataset.epoch, index])
    if "normal_centres" in loop_side:
        with torch.no_grad():
            model.pooling.centers.copy_(torch.randn(model.pooling.centers.shape,
                                                    generator=torch.Generator().manual_seed(seed)) * 0.1)
    if SMALL_HEAD in loop_side:  # the loop's classifier: small weights, so Adam turns them fast
        with torch.no_grad():
            trainer.head.weight.copy_(torch.randn(trainer.head.weight.shape,
                                                  generator=torch.Generator().manual_seed(seed)) * 0.01)
    if "uniform_sampler" in loop_side:
        trainer.sampler = UniformSampler(dataset.labels, seed=seed,
                                         utterances_per_speaker=trainer.sampler.draws_per_speaker)
    batch_means = None
    if "utterance_mean" in loop_side:
        frontend = model.frontend
        means = []
        with torch.no_grad():
            for utt in dataset.utts:  # label i = recording i (one recording per speaker)
                wave = torch.from_numpy(sf.read(utt.path, dtype="float32")[0])[None]
                feats, lengths = frontend.raw(wave, torch.tensor([wave.shape[1]]))
                means.append(feats[0, :, : int(lengths[0])].mean(-1))
        utterance_means = torch.stack(means)  # (N, F), rows in label order
        assert list(dataset.labels) == sorted(dataset.labels), "one recording per speaker expected"
        batch_means = {"labels": None}

        def utterance_stats(feats, frame_lengths):
            chosen = utterance_means[batch_means["labels"]]  # (B, F)
            return {"count": torch.ones(len(chosen)), "sum": chosen, "sumsq": chosen.pow(2)}

        frontend.norm_stats = utterance_stats
    original_step = trainer._step

    def step(waves, labels, epoch, index):
        if batch_means is not None:
            batch_means["labels"] = labels
        loss, hits = original_step(waves, labels, epoch, index)
        losses.append(float(loss))
        return loss, hits

    trainer._step = step

    def restore_frontend() -> None:
        if batch_means is not None:
            del model.frontend.norm_stats  # back to the class's method for evaluation

    return restore_frontend


# ----------------------------------------------------------------------------- runs
def run_one(args: argparse.Namespace, row: str, seed: int) -> dict:
    out = args.work / "runs" / f"{row.replace(CONFIG_ROW, 'config-').replace('/', '_')}_s{seed}"
    result_path = out / "result.json"
    if result_path.is_file():
        return json.loads(result_path.read_text())
    info = prepare(args.data, args.work)
    if row.startswith(CONFIG_ROW):  # a shipped config as it is, trained as the loop trains
        name = row[len(CONFIG_ROW):]
        description, trainer_side = f"{Path(name).stem}: its model and head, the loop's batches and optimiser", set()
        config = apply_overrides(load_config(name), [*LOOP_TRAINING, f"train.seed={seed}", *args.overrides])
    else:
        description, extra, trainer_side = ROWS[row]
        config = apply_overrides(load_config("resnet34_ghostvlad"),
                                 [*LOOP_RECIPE, *extra, f"train.seed={seed}", *args.overrides])
    torch.set_num_threads(args.threads)
    losses: list[float] = []
    trainer = Trainer(config, out, training_utterances(info))
    if row.startswith(CONFIG_ROW):
        loop_side = {"fresh_crops"}  # the trainer as it is
    else:
        loop_side = (LOOP_PATCHES - trainer_side) | (trainer_side & {SMALL_HEAD})
    restore_frontend = apply_patches(trainer, loop_side, seed, losses)
    started = time.monotonic()
    trainer.fit(max_steps=args.steps)
    seconds = time.monotonic() - started
    restore_frontend()
    result = {
        "row": row, "seed": seed, "description": description, "steps": len(losses),
        "train_seconds": round(seconds, 1), "samples_per_s": round(len(losses) * config.data.batch_size / seconds, 2),
        "final_loss": statistics.mean(losses[-10:]),
        **evaluate(trainer.model.eval(), trial_lists(info)),
    }
    for path in (out / "checkpoints").glob("*.pt"):
        path.unlink()  # results only: the checkpoints are hundreds of MB over a whole table
    result_path.write_text(json.dumps(result, indent=1))
    print(json.dumps(result), flush=True)
    return result


def run_loop(args: argparse.Namespace, seconds: float) -> dict:
    """The reference loop itself, time-budgeted (its own split and 3 s-piece trials)."""
    out = args.work / "runs" / f"loop_{seconds:g}s"
    result_path = out / "result.json"
    if result_path.is_file():
        return json.loads(result_path.read_text())
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "THREADS": str(args.threads)}
    text = subprocess.run([sys.executable, str(LOOP), str(seconds)], env=env, check=True,
                          capture_output=True, text=True).stdout
    (out / "log.txt").write_text(text)
    final = re.search(r"steps=(\d+) .*EER=([\d.]+)%", text)
    losses = [float(x) for x in re.findall(r"loss ([\d.]+)", text)]
    result = {"row": "loop", "seed": 0, "description": f"minimal_loop.py {seconds:g} s",
              "steps": int(final[1]), "eer_pieces_3s": float(final[2]),
              "final_loss": losses[-1] if losses else float("nan")}
    result_path.write_text(json.dumps(result, indent=1))
    print(json.dumps(result), flush=True)
    return result


def table(work: Path) -> str:
    results = [json.loads(p.read_text()) for p in sorted((work / "runs").glob("*/result.json"))]
    lines = ["| row | what | steps | seeds | 3 s pieces EER (each seed) | mean | halves EER (mean) | final loss |",
             "|---|---|---|---|---|---|---|---|"]
    rows = sorted({r["row"] for r in results}, key=lambda r: (r == "loop", r))
    for row in rows:
        runs = [r for r in results if r["row"] == row]
        each = " / ".join(f"{r['eer_pieces_3s']:.2f}" for r in runs)
        mean = statistics.mean(r["eer_pieces_3s"] for r in runs)
        halves = [r["eer_halves"] for r in runs if "eer_halves" in r]
        halves_text = f"{statistics.mean(halves):.2f}" if halves else "–"
        loss = statistics.mean(r["final_loss"] for r in runs)
        steps = "/".join(sorted({str(r["steps"]) for r in runs}))
        lines.append(f"| {row} | {runs[0]['description']} | {steps} | {len(runs)} | {each} | {mean:.2f} | "
                     f"{halves_text} | {loss:.2f} |")
    return "\n".join(lines)


def config_name(text: str) -> str:
    """A --configs value; a key=value there is an override that argparse took for a config."""
    if "=" in text:
        raise argparse.ArgumentTypeError(f"{text!r} is an override, not a config: put overrides before "
                                         "--configs/--rows, or after the other options")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=60, help="training steps of every run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--configs", nargs="+", default=[], metavar="CONFIG", type=config_name,
                        help="instead of --rows: named configs or YAML files, trained with the loop's batches "
                        "and optimiser (their own model and head)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--parallel", type=int, default=1, help="runs at once (each --threads threads)")
    parser.add_argument("--loop-seconds", type=float, nargs="*", default=[],
                        help="also run minimal_loop.py for these budgets")
    parser.add_argument("--table", action="store_true", help="print the table of finished runs and stop")
    parser.add_argument("--one", nargs=2, metavar=("ROW", "SEED"), help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="config overrides applied to every row")
    args = parser.parse_args()
    if args.table:
        print(table(args.work))
        return
    if args.one:
        run_one(args, args.one[0], int(args.one[1]))
        return
    prepare(args.data, args.work)
    jobs = [[sys.executable, __file__, "--work", str(args.work), "--data", str(args.data), "--steps",
             str(args.steps), "--threads", str(args.threads), "--one", row, str(seed), *args.overrides]
            for row in ([CONFIG_ROW + c for c in args.configs] or args.rows) for seed in args.seeds]
    running: list[subprocess.Popen] = []
    for job in jobs:
        while len(running) >= args.parallel:
            time.sleep(2)
            running = [p for p in running if p.poll() is None]
        running.append(subprocess.Popen(job))
    for process in running:
        process.wait()
    for seconds in args.loop_seconds:
        run_loop(args, seconds)
    print(table(args.work))


if __name__ == "__main__":
    main()
