"""GhostVLAD against temporal statistics pooling (TSTP) on real speech, at equal steps, over seeds.

Both poolings train the same config (default: the mini recipe's real-speech
config, ``recipes/mini/conf/real.yaml``) on the reference loop's split of the
LibriSpeech subset (:mod:`librispeech_heldout`: 200 training recordings, 51
held-out speakers), for the same number of steps (``--epochs`` whole epochs,
no time budget, so the learning-rate schedule is identical), once per seed. The
seed sets the initial weights, the crops and their order. Scored on all pairs
of the held-out 3 s pieces and of the recording halves. The table gives each
seed, the mean and the sample standard deviation.

    python benchmarks/ghostvlad_vs_tstp.py --work /tmp/gvt --epochs 12 --seeds 0 1 2
    python benchmarks/ghostvlad_vs_tstp.py --work /tmp/gvt --table
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from librispeech_heldout import DEFAULT_DATA, evaluate, prepare, training_utterances, trial_lists

from speakervlad.config import apply_overrides, load_config
from speakervlad.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
POOLINGS = {"ghostvlad": [], "tstp": ["model.pooling.name=tstp"]}


def run_one(args: argparse.Namespace, pooling: str, seed: int) -> dict:
    out = args.work / "runs" / f"{pooling}_s{seed}"
    done = out / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    info = prepare(args.data, args.work)
    config = apply_overrides(load_config(args.config), [
        f"train.epochs={args.epochs}", "train.max_minutes=0", "train.fit_to_budget=false", "train.keep_checkpoints=1",
        f"train.seed={seed}", *POOLINGS[pooling], *args.overrides])
    trainer = Trainer(config, out, training_utterances(info))
    started = time.monotonic()
    trainer.fit()
    seconds = time.monotonic() - started
    rows = trainer.metrics.rows()
    result = {
        "pooling": pooling, "seed": seed, "steps": args.epochs * trainer.steps_per_epoch,
        "params_m": sum(p.numel() for p in trainer.model.parameters()) / 1e6,
        "train_seconds": round(seconds, 1), "final_loss": float(rows[-1]["loss"]),
        **evaluate(trainer.model, trial_lists(info)),
    }
    for path in (out / "checkpoints").glob("*.pt"):
        path.unlink()
    done.write_text(json.dumps(result, indent=1))
    print(json.dumps(result), flush=True)
    return result


def table(work: Path) -> str:
    results = [json.loads(p.read_text()) for p in sorted((work / "runs").glob("*/result.json"))]
    lines = ["| pooling | params | steps | seeds | 3 s pieces EER: each seed | mean ± sd | halves EER: each seed | "
             "mean ± sd | minutes per run |", "|---|---|---|---|---|---|---|---|---|"]
    for pooling in POOLINGS:
        runs = sorted((r for r in results if r["pooling"] == pooling), key=lambda r: r["seed"])
        if not runs:
            continue
        cells = []
        for key in ("eer_pieces_3s", "eer_halves"):
            values = [r[key] for r in runs]
            spread = statistics.stdev(values) if len(values) > 1 else float("nan")
            cells += [" / ".join(f"{v:.2f}" for v in values), f"{statistics.mean(values):.2f} ± {spread:.2f}"]
        minutes = statistics.mean(r["train_seconds"] for r in runs) / 60
        lines.append(f"| {pooling} | {runs[0]['params_m']:.2f} M | {runs[0]['steps']} | {len(runs)} | "
                     f"{' | '.join(cells)} | {minutes:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--config", default=str(ROOT / "recipes" / "mini" / "conf" / "real.yaml"))
    parser.add_argument("--epochs", type=int, default=12, help="epochs of every run (no time budget)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--poolings", nargs="+", default=list(POOLINGS), choices=list(POOLINGS))
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--table", action="store_true", help="print the table of finished runs and stop")
    parser.add_argument("overrides", nargs="*", help="config overrides for every run (key=value)")
    args = parser.parse_args()
    if not args.table:
        torch.set_num_threads(args.threads)
        for seed in args.seeds:  # seed by seed: a partial table is already a paired comparison
            for pooling in args.poolings:
                run_one(args, pooling, seed)
    print(table(args.work))


if __name__ == "__main__":
    main()
