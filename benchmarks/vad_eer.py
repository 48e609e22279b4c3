"""What VAD does to accuracy: EER on held-out real speech padded with silence and noise, without and with VAD.

For a model trained on real speech (``--model``), on speakers it did not train on:

1. Every held-out recording is cut into consecutive ``--piece-seconds`` pieces
   (remainders dropped); the trials are all pairs of pieces (targets: two pieces
   of one recording, so same session and channel), scored by cosine similarity.
2. Every piece also exists *padded*: 2-6 s of silence and noise around it
   (:mod:`speakervlad.data.padding`: half noise floor, half room noise,
   keyboard clicks or hold music, split at random between a lead and a tail),
   drawn once per piece from ``--seed``, so both conditions see the same padding.
3. Embeddings of four conditions: clean pieces as they are (the reference),
   padded pieces as they are (no VAD), padded pieces with VAD (Silero segments
   cut and joined, as ``embed(..., vad=True)``), and clean pieces with VAD (what
   the VAD costs where there is nothing to remove). A piece in which the VAD
   finds too little speech to embed is embedded whole, and counted.
4. EER and minDCF (p = 0.01) of each condition on the same trials.

Data: the LibriSpeech subset of ``../shared/data``, the ``--heldout`` speakers
drawn with ``--seed`` by ``speakervlad.data.heldout.split_speakers`` (defaults 51
and 0, the split of ``benchmarks/training_ablation.py``, whose 3 s pieces give
282 target and 16,189 non-target trials): pass the split the model was trained with.

    python benchmarks/vad_eer.py --model exp/model.pt
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from speakervlad.audio import load_audio
from speakervlad.data.heldout import all_pairs, split_speakers
from speakervlad.data.lists import Utterance, build_list
from speakervlad.data.padding import pad_with_non_speech
from speakervlad.embedding.embedder import l2_normalize
from speakervlad.embedding.torch_embedder import load_model
from speakervlad.embedding.vad import VadOptions, speech_only
from speakervlad.errors import InsufficientSpeechError
from speakervlad.scoring.metrics import eer, min_dcf

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "librispeech-train-clean-100-subset"
PATTERN = r"^(?P<speaker>\d+)-"
CONDITIONS = ("clean", "padded, no VAD", "padded, VAD", "clean, VAD")


def pieces(held: list[Utterance], seconds: float) -> tuple[list[Utterance], list[np.ndarray]]:
    """Consecutive ``seconds`` pieces of each recording, keyed ``<key>#k``, and their waveforms."""
    size = int(seconds * 16000)
    utts, waves = [], []
    for utt in sorted(held, key=lambda u: u.key):
        wave = load_audio(utt.path, name=utt.key)
        for k in range(len(wave) // size):
            utts.append(Utterance(f"{utt.key}#{k:03d}", utt.speaker, utt.path))
            waves.append(wave[k * size:(k + 1) * size])
    return utts, waves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="checkpoint trained on real speech")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="speaker-labelled recordings")
    parser.add_argument("--pattern", default=PATTERN, help="regex naming the speaker in a file name")
    parser.add_argument("--heldout", type=int, default=51, help="held-out speakers (default 51)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the speaker split and the padding (default 0)")
    parser.add_argument("--piece-seconds", type=float, default=3.0, help="test pieces (default 3 s)")
    parser.add_argument("--max-recordings", type=int, help="use only the first N held-out recordings (smoke runs)")
    parser.add_argument("--json", type=Path, help="write the results as JSON")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = load_model(args.model)
    _, held = split_speakers(build_list(args.data, pattern=args.pattern), args.heldout, seed=args.seed)
    held = sorted(held, key=lambda u: u.key)[: args.max_recordings]
    utts, clean = pieces(held, args.piece_seconds)
    padded = [pad_with_non_speech(w, np.random.default_rng([args.seed, i])).wave for i, w in enumerate(clean)]
    vad, whole = VadOptions(), {"padded, VAD": 0, "clean, VAD": 0}

    def speech(wave: np.ndarray, condition: str) -> np.ndarray:
        try:
            return speech_only(wave, vad, condition, model.min_seconds)
        except InsufficientSpeechError:
            whole[condition] += 1
            return wave

    inputs = {"clean": clean, "padded, no VAD": padded,
              "padded, VAD": [speech(w, "padded, VAD") for w in padded],
              "clean, VAD": [speech(w, "clean, VAD") for w in clean]}
    trials = all_pairs(utts)
    index = {u.key: i for i, u in enumerate(utts)}
    enroll = np.array([index[a] for a, _, _ in trials])
    test = np.array([index[b] for _, b, _ in trials])
    labels = np.array([t for _, _, t in trials], dtype=bool)
    print(f"{args.model}: {len(held)} held-out recordings -> {len(utts)} pieces of {args.piece_seconds:g} s; "
          f"{labels.sum()} target / {(~labels).sum()} non-target trials")
    print("| test material | EER % | minDCF 0.01 | mean seconds embedded | embedded whole (VAD found too little) |")
    print("|---|---:|---:|---:|---:|")
    result = {"model": str(args.model), "pieces": len(utts), "targets": int(labels.sum()),
              "nontargets": int((~labels).sum()), "conditions": {}}
    for condition in CONDITIONS:
        waves = inputs[condition]
        emb = l2_normalize(model.embed_waveforms(waves), [u.key for u in utts])  # (N, E)
        scores = np.einsum("ij,ij->i", emb[enroll], emb[test])
        rate, _ = eer(scores, labels)
        dcf = min_dcf(scores, labels, 0.01)[0]
        seconds = float(np.mean([len(w) for w in waves])) / 16000
        result["conditions"][condition] = {"eer": rate, "min_dcf_0.01": dcf, "mean_seconds": seconds,
                                           "embedded_whole": whole.get(condition)}
        print(f"| {condition} | {100 * rate:.2f} | {dcf:.3f} | {seconds:.2f} | "
              f"{whole[condition] if condition in whole else '-'} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
