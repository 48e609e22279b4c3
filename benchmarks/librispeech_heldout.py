"""The reference loop's held-out split of the LibriSpeech subset, and its trials, for the benchmarks.

``../shared/reference/minimal_loop.py`` holds out 51 of the 251 speakers of
``../shared/data/librispeech-train-clean-100-subset`` (``numpy`` seed 0 over the
sorted speaker ids; :func:`speakervlad.data.heldout.split_speakers` draws the
same) and trains on the other 200 recordings. Two trial lists over the held-out
recordings (one per speaker, so every target pair comes from one recording):

* ``pieces_3s``: each recording cut into consecutive 3 s pieces (remainders and
  the two recordings under 3 s dropped), all pairs: 182 pieces, 282 target /
  16,189 non-target trials. These are the loop's own trials.
* ``halves``: the first and second half of every recording (0.8-8.5 s each), all
  pairs: 102 halves, 51 target / 5,100 non-target trials. Longer test material,
  closer to full-utterance trials, but with 51 targets one miss moves the EER by
  about 2 points: a coarse number.

>>> # info = prepare(DEFAULT_DATA, Path("/tmp/work")); evaluate(model, trial_lists(info))
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from speakervlad.data.heldout import all_pairs, cut_segments, split_speakers
from speakervlad.data.lists import Utterance, build_list
from speakervlad.embedding.embedder import l2_normalize
from speakervlad.embedding.torch_embedder import EmbeddingModel
from speakervlad.scoring.metrics import eer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / ".." / "shared" / "data" / "librispeech-train-clean-100-subset"
LOOP = ROOT / ".." / "shared" / "reference" / "minimal_loop.py"
PATTERN = r"^(?P<speaker>\d+)-"
HELDOUT, SPLIT_SEED, PIECE_SECONDS = 51, 0, 3.0


def prepare(data: Path, work: Path) -> dict:
    """Training list, the 3 s-piece and the halves trial material (made once per ``work``)."""
    done = work / "data" / "prepared.json"
    if done.is_file():
        return json.loads(done.read_text())
    utts = build_list(data, pattern=PATTERN)
    train, held = split_speakers(utts, HELDOUT, seed=SPLIT_SEED)
    pieces = cut_segments(held, work / "data" / "pieces", PIECE_SECONDS)
    halves = []
    for utt in held:
        wave, rate = sf.read(utt.path, dtype="float32")
        middle = len(wave) // 2
        for k, part in enumerate((wave[:middle], wave[middle:])):
            key = f"{Path(utt.key).stem}_half{k}.wav"
            path = work / "data" / "halves" / key
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, part, rate, subtype="PCM_16")
            halves.append(Utterance(key, utt.speaker, str(path)))
    info = {
        "train": [[u.key, u.speaker, u.path] for u in train],
        "lists": {
            "pieces_3s": [[u.key, u.speaker, u.path] for u in pieces],
            "halves": [[u.key, u.speaker, u.path] for u in halves],
        },
    }
    done.parent.mkdir(parents=True, exist_ok=True)
    done.write_text(json.dumps(info))
    return info


def training_utterances(info: dict) -> list[Utterance]:
    """The 200 training recordings."""
    return [Utterance(*row) for row in info["train"]]


def trial_lists(info: dict) -> dict[str, tuple[list[str], np.ndarray, np.ndarray, np.ndarray]]:
    """name -> (paths, enroll index, test index, is-target), every pair of the list's recordings."""
    out = {}
    for name, rows in info["lists"].items():
        utts = [Utterance(*row) for row in rows]
        position = {u.key: i for i, u in enumerate(utts)}
        trials = all_pairs(utts)
        out[name] = (
            [u.path for u in utts],
            np.array([position[a] for a, _, _ in trials]),
            np.array([position[b] for _, b, _ in trials]),
            np.array([t for _, _, t in trials], dtype=bool),
        )
    return out


def evaluate(model: torch.nn.Module | EmbeddingModel, lists: dict) -> dict[str, float]:
    """``eer_NAME`` (%) and ``targets_NAME`` of each trial list: whole pieces, cosine scoring."""
    embedder = model if isinstance(model, EmbeddingModel) else EmbeddingModel(model.eval(), fuse=False)
    result = {}
    for name, (paths, enroll, test, labels) in lists.items():
        emb = l2_normalize(embedder.embed_many(paths))
        scores = np.einsum("ij,ij->i", emb[enroll], emb[test])
        result[f"eer_{name}"] = 100 * eer(scores, labels)[0]
        result[f"targets_{name}"] = int(labels.sum())
    return result
