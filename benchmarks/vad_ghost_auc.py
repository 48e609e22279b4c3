"""What the ghost clusters absorb: does per-frame ghost mass separate non-speech from speech frames?

For a GhostVLAD model trained on real speech (``--model``), on real recordings it
did not train on, each padded with 2-6 s of silence and noise
(:mod:`speakervlad.data.padding`: half noise floor, half room noise, keyboard
clicks or hold music, split at random between a lead and a tail):

1. :func:`speakervlad.embedding.explain.explain` on the whole padded recording:
   the soft assignment of every pooled frame to the K clusters and G ghosts, and
   Silero VAD's segments.
2. A frame is *speech* when its centre lies in a VAD segment (the VAD's labels,
   which also call the pauses inside real speech non-speech), and separately
   when it lies inside the original recording (the padding's labels).
3. ROC AUC of per-frame ghost mass as a detector of non-speech frames, over the
   frames of all recordings pooled, and the median of the per-recording AUCs;
   mean ghost mass over speech and non-speech frames; and the recordings' ghost
   mass (the share the embedding reports) clean against padded.

An AUC of 0.5 says the ghosts do not tell non-speech from speech; 1.0, that every
non-speech frame gives more mass to the ghosts than every speech frame.

Data: the LibriSpeech subset of ``../shared/data`` (one recording of 1.6-17 s per
speaker), the ``--heldout`` speakers drawn with ``--seed`` by
``speakervlad.data.heldout.split_speakers`` (defaults: 51 and 0, the split of
``benchmarks/training_ablation.py``): pass the split the model was trained with.

    python benchmarks/vad_ghost_auc.py --model exp/model.pt --picture docs/explain.png
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
import torch

from speakervlad.audio import load_audio
from speakervlad.data.heldout import split_speakers
from speakervlad.data.lists import build_list
from speakervlad.data.padding import pad_with_non_speech
from speakervlad.embedding.explain import explain, plot_explanation
from speakervlad.embedding.torch_embedder import load_model
from speakervlad.scoring.metrics import roc_auc

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "librispeech-train-clean-100-subset"
PATTERN = r"^(?P<speaker>\d+)-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="GhostVLAD checkpoint trained on real speech")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="speaker-labelled recordings")
    parser.add_argument("--pattern", default=PATTERN, help="regex naming the speaker in a file name")
    parser.add_argument("--heldout", type=int, default=51, help="held-out speakers (default 51)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the speaker split (default 0)")
    parser.add_argument("--max-recordings", type=int, help="use only the first N held-out recordings (smoke runs)")
    parser.add_argument("--picture", type=Path, help="also write the explain PNG of the first padded recording")
    parser.add_argument("--json", type=Path, help="write the results as JSON")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = load_model(args.model)
    if model.config.pooling.name != "ghostvlad" or model.config.pooling.ghost_clusters == 0:
        raise SystemExit(f"{args.model} pools with {model.config.pooling.name} and "
                         f"{model.config.pooling.ghost_clusters} ghost clusters: this measures GhostVLAD's ghosts")
    _, held = split_speakers(build_list(args.data, pattern=args.pattern), args.heldout, seed=args.seed)
    held = sorted(held, key=lambda u: u.key)[: args.max_recordings]
    masses, by_vad, by_padding, per_recording, clean_mass, padded_mass = [], [], [], [], [], []
    for index, utt in enumerate(held):
        clean = load_audio(utt.path, name=utt.key)
        padded = pad_with_non_speech(clean, np.random.default_rng([args.seed, index]))
        e = explain(model, padded.wave, name=utt.key)
        mass, vad_speech = e.frame_ghost_mass, e.frame_is_speech
        inside = (e.frame_times * e.sample_rate >= padded.start) & (e.frame_times * e.sample_rate < padded.end)
        masses.append(mass)
        by_vad.append(vad_speech)
        by_padding.append(inside)
        if 0 < vad_speech.sum() < len(vad_speech):
            per_recording.append(roc_auc(mass, ~vad_speech))
        clean_mass.append(model.analyze_waveform(clean).ghost_mass)
        padded_mass.append(float(mass.mean()))
        if index == 0 and args.picture:
            title = f"{Path(utt.key).name} padded with {padded.pad_seconds:.1f} s ({' + '.join(padded.noises)})"
            print(f"picture: {plot_explanation(e, args.picture, title=title)}")
    mass, vad_speech, inside = np.concatenate(masses), np.concatenate(by_vad), np.concatenate(by_padding)
    result = {
        "model": str(args.model), "recordings": len(held), "frames": int(len(mass)),
        "frame_seconds": model.frame_seconds,
        "auc_non_speech_vad_labels": roc_auc(mass, ~vad_speech),
        "auc_non_speech_padding_labels": roc_auc(mass, ~inside),
        "median_recording_auc_vad_labels": statistics.median(per_recording) if per_recording else None,
        "ghost_mass_speech_frames": float(mass[vad_speech].mean()),
        "ghost_mass_non_speech_frames": float(mass[~vad_speech].mean()),
        "recording_ghost_mass_clean": float(np.mean(clean_mass)),
        "recording_ghost_mass_padded": float(np.mean(padded_mass)),
    }
    print(f"{args.model}: {len(held)} held-out recordings padded with 2-6 s of silence and noise, "
          f"{len(mass)} pooled frames of {1000 * model.frame_seconds:.0f} ms "
          f"({100 * (~vad_speech).mean():.0f} % non-speech by the VAD)")
    print("| per-frame ghost mass as a non-speech detector | value |")
    print("|---|---:|")
    print(f"| ROC AUC, VAD labels, all frames pooled | {result['auc_non_speech_vad_labels']:.3f} |")
    print(f"| ROC AUC, padding labels (original recording = speech) | {result['auc_non_speech_padding_labels']:.3f} |")
    if per_recording:
        print(f"| median per-recording ROC AUC, VAD labels | {result['median_recording_auc_vad_labels']:.3f} |")
    print(f"| mean ghost mass: speech frames / non-speech frames | {result['ghost_mass_speech_frames']:.3f} / "
          f"{result['ghost_mass_non_speech_frames']:.3f} |")
    print(f"| recording ghost mass: clean / padded | {result['recording_ghost_mass_clean']:.3f} / "
          f"{result['recording_ghost_mass_padded']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
