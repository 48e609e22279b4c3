"""Training learns real voices: a small model, a fixed number of steps on the LibriSpeech subset,
then the held-out EER must sit well below the untrained model's (needs ../shared/data).

The split is the reference loop's (51 speakers held out with seed 0; 200 one-recording speakers
train). Trials: every held-out recording cut into 3 s pieces, all pairs (282 target / 16,189
non-target). This fails when a change stops the trainer from learning, as the missing
embedding normalisation and the repeated crops once did.

The head is a plain softmax, as in the mini recipe's synthetic config: cosine-margin heads sit on a
plateau near chance for the first hundred steps of this small model (measured with the same
seed: AAM-softmax m 0.2 s 30 28.7 % against 30.9 % untrained, s 16 17.2 %, softmax 15.6 %), so
they would make this test slow, not stricter. tests/test_train_learning.py covers every head.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from speakervlad.config import ExperimentConfig, apply_overrides
from speakervlad.data.heldout import all_pairs, cut_segments, split_speakers
from speakervlad.data.lists import build_list
from speakervlad.embedding.embedder import l2_normalize
from speakervlad.embedding.torch_embedder import EmbeddingModel
from speakervlad.models import build_model
from speakervlad.scoring.metrics import eer
from speakervlad.train.state import seed_everything
from speakervlad.train.trainer import Trainer

pytestmark = pytest.mark.realdata

STEPS = 100
SMALL = [
    "model.frontend.name=fbank", "model.frontend.n_mels=40", "model.frontend.normalize=mean",
    "model.trunk=resnet34", "model.trunk_width=8",
    "model.pooling.name=ghostvlad", "model.pooling.clusters=8", "model.pooling.ghost_clusters=2",
    "model.pooling.feature_dim=128", "model.embedding_dim=128", "model.embedding_activation=none",
    "head.name=softmax",
    "data.crop_seconds=1.5", "data.batch_size=32", "data.num_workers=0", "data.utterances_per_speaker=8",
    "optim.optimizer=adam", "optim.lr=0.003", "optim.weight_decay=1e-5", "optim.scheduler=constant",
    "train.epochs=100", "train.keep_checkpoints=1",
]


def pieces_eer(model, pieces) -> float:
    embedder = EmbeddingModel(model.eval())
    vectors = l2_normalize(embedder.embed_many([u.path for u in pieces]))
    index = {u.key: i for i, u in enumerate(pieces)}
    trials = all_pairs(pieces)
    scores = np.array([vectors[index[a]] @ vectors[index[b]] for a, b, _ in trials])
    return 100 * eer(scores, np.array([t for _, _, t in trials]))[0]


def test_a_hundred_steps_on_real_speech_learn_unseen_voices(shared_data: Path, tmp_path: Path, one_thread):
    utts = build_list(shared_data / "librispeech-train-clean-100-subset", pattern=r"^(?P<speaker>\d+)-")
    train, held = split_speakers(utts, 51, seed=0)
    pieces = cut_segments(held, tmp_path / "pieces", 3.0)
    config = apply_overrides(ExperimentConfig(), SMALL)
    seed_everything(config.train.seed)  # the trainer's initial weights
    untrained = pieces_eer(build_model(config.model), pieces)
    trainer = Trainer(config, tmp_path / "exp", train)
    trainer.fit(max_steps=STEPS)
    trained = pieces_eer(trainer.model, pieces)
    print(f"REALDATA untrained {untrained:.2f} trained {trained:.2f}")
    assert trained < untrained - 10, f"EER {trained:.2f} % after {STEPS} steps, untrained {untrained:.2f} %"
