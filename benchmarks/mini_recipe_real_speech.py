"""The mini recipe on real speech against the reference loop, at equal training minutes.

Lays the LibriSpeech subset out as ``speaker/file.flac`` (symlinks under WORK),
runs ``recipes/mini/run.sh --data WORK/corpus --heldout 51 --train-minutes M``
(the loop's split: the same 51 speakers held out), then scores the recipe's
final model on the loop's held-out trials (:mod:`librispeech_heldout`: all pairs
of 3 s pieces, and all pairs of recording halves). ``--loop`` also runs
``minimal_loop.py`` for the same M minutes of training, with ``--loop-threads``.

    python benchmarks/mini_recipe_real_speech.py --work /tmp/mini_real --minutes 20 --loop
    python benchmarks/mini_recipe_real_speech.py --work /tmp/mini_real --minutes 10 --tag specaug \\
        augment.specaug_prob=0.5              # trailing key=value: config overrides for the recipe
    python benchmarks/mini_recipe_real_speech.py --work /tmp/mini_real --table

Every run leaves WORK/results/TAG.json; the table lists them all. Run one job at
a time on an otherwise idle machine: both sides are budgeted in wall-clock minutes.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from librispeech_heldout import DEFAULT_DATA, LOOP, PATTERN, evaluate, prepare, trial_lists

import speakervlad

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "mini" / "run.sh"


def speaker_folders(data: Path, out: Path) -> Path:
    """``out/<speaker>/<file>.flac`` symlinks to the flat subset (the layout users have)."""
    for path in sorted(data.glob("*.flac")):
        speaker = re.match(PATTERN, path.name)["speaker"]
        link = out / speaker / path.name
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path.resolve())
    return out


def run_recipe(args: argparse.Namespace, info: dict) -> dict:
    exp = args.work / f"exp_{args.tag}"
    corpus = speaker_folders(args.data, args.work / "corpus")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = ["bash", str(RECIPE), "--data", str(corpus), "--heldout", "51", "--seed", "0",
               "--train-minutes", str(args.minutes), "--exp", str(exp), *args.overrides]
    print("+", " ".join(command), flush=True)
    started = time.monotonic()
    subprocess.run(command, check=True, env=env)
    seconds = time.monotonic() - started
    rows = list(csv.DictReader((exp / "metrics.csv").open()))
    recipe_eer = json.loads((exp / "results" / "trained.json").read_text())
    model = speakervlad.load_model(exp / "final.pt")
    return {
        "run": f"mini recipe {args.tag}", "minutes": args.minutes, "overrides": args.overrides,
        "epochs": len(rows), "train_seconds": round(sum(float(r["seconds"]) for r in rows), 1),
        "samples_per_s": float(rows[-1]["samples_per_s"]), "final_loss": float(rows[-1]["loss"]),
        "recipe_seconds": round(seconds, 1), "recipe_table": recipe_eer,
        **evaluate(model, trial_lists(info)),
    }


def run_loop(args: argparse.Namespace) -> dict:
    env = {**os.environ, "THREADS": str(args.loop_threads)}
    text = subprocess.run([sys.executable, str(LOOP), str(args.minutes * 60)], env=env, check=True,
                          capture_output=True, text=True).stdout
    final = re.search(r"steps=(\d+) .*EER=([\d.]+)%", text)
    losses = re.findall(r"loss ([\d.]+)", text)
    return {"run": f"minimal_loop.py, {args.loop_threads} threads", "minutes": args.minutes, "steps": int(final[1]),
            "eer_pieces_3s": float(final[2]), "final_loss": float(losses[-1]) if losses else None}


def table(work: Path) -> str:
    lines = ["| run | minutes | training | final loss | 3 s pieces EER | halves EER |", "|---|---|---|---|---|---|"]
    for path in sorted((work / "results").glob("*.json")):
        r = json.loads(path.read_text())
        done = f"{r['steps']} steps" if "steps" in r else f"{r['epochs']} epochs, {r['train_seconds']:.0f} s"
        halves = f"{r['eer_halves']:.2f} %" if "eer_halves" in r else "–"
        lines.append(f"| {r['run']} | {r['minutes']:g} | {done} | {r['final_loss']:.2f} | "
                     f"{r['eer_pieces_3s']:.2f} % | {halves} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=20, help="training minutes of each side")
    parser.add_argument("--tag", default="default", help="names this recipe run (WORK/exp_TAG)")
    parser.add_argument("--loop", action="store_true", help="also run the reference loop for --minutes")
    parser.add_argument("--loop-threads", type=int, default=2)
    parser.add_argument("--no-recipe", action="store_true", help="only the loop")
    parser.add_argument("--table", action="store_true", help="print the table of finished runs and stop")
    parser.add_argument("overrides", nargs="*", help="config overrides for the recipe (key=value)")
    args = parser.parse_args()
    if not args.table:
        info = prepare(args.data, args.work)
        results = args.work / "results"
        results.mkdir(parents=True, exist_ok=True)
        if not args.no_recipe:
            result = run_recipe(args, info)
            (results / f"recipe_{args.tag}_{args.minutes:g}min.json").write_text(json.dumps(result, indent=1))
        if args.loop:
            result = run_loop(args)
            (results / f"loop_{args.minutes:g}min.json").write_text(json.dumps(result, indent=1))
    print(table(args.work))


if __name__ == "__main__":
    main()
