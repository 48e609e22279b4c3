"""The real VoxCeleb1 trial lists: parse all four, score Vox1-O with generated embeddings."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from speakervlad.embedding.directory import Embeddings
from speakervlad.scoring.cosine import cosine_scores
from speakervlad.scoring.report import evaluate
from speakervlad.scoring.trials import VOXCELEB, read_trials

TRIALS = Path(__file__).parents[1].parent / "shared/data" / "voxceleb1-trials"
LISTS = {  # file: (trials, targets)
    "veri_test.txt": (37_720, 18_860),
    "veri_test2.txt": (37_611, 18_802),
    "list_test_all.txt": (581_480, 290_743),
    "list_test_hard.txt": (552_536, 276_270),
}

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not TRIALS.is_dir(), reason=f"{TRIALS} not available"),
]


@pytest.mark.parametrize("name", LISTS)
def test_real_trial_lists_parse(name):
    trials = read_trials(TRIALS / name)
    assert (len(trials), trials.n_target) == LISTS[name] and trials.format == VOXCELEB
    first = (TRIALS / name).read_text().split("\n", 1)[0].split()
    assert [str(int(trials.labels[0])), trials.enroll[0], trials.test[0]] == first
    assert all(key.endswith(".wav") and key.count("/") == 2 for key in trials.keys[:100].tolist())


def test_score_vox1_o_with_generated_embeddings():
    trials = read_trials(TRIALS / "veri_test.txt")
    keys = trials.keys.tolist()
    rng = np.random.default_rng(0)
    speakers = sorted({key.split("/")[0] for key in keys})
    centres = rng.standard_normal((len(speakers), 64))
    index = {speaker: i for i, speaker in enumerate(speakers)}
    matrix = centres[[index[key.split("/")[0]] for key in keys]] + 1.5 * rng.standard_normal((len(keys), 64))
    scored = cosine_scores(trials, Embeddings(keys, matrix.astype(np.float32)))
    assert len(scored.scores) == 37_720 and scored.skipped == 0
    result = evaluate("veri_test", scored.scores, trials.labels)
    assert 0.001 < result.eer < 0.2 and result.n_target == 18_860
