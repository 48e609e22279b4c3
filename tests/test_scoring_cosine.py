"""Cosine scoring, mean subtraction, missing keys and AS-norm against direct computations."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from speakervlad.embedding.directory import Embeddings, save_embeddings
from speakervlad.errors import EmbeddingError, TrialError
from speakervlad.scoring import cosine
from speakervlad.scoring.asnorm import asnorm_scores, cohort_stats, load_cohort
from speakervlad.scoring.cosine import cosine_scores, mean_embedding
from speakervlad.scoring.trials import Trials


def make_case(seed: int = 0, n_keys: int = 30, n_trials: int = 200, dim: int = 8):
    rng = np.random.default_rng(seed)
    keys = [f"spk{i % 5}/utt{i}.wav" for i in range(n_keys)]
    emb = Embeddings(keys, rng.standard_normal((n_keys, dim)).astype(np.float32) + 0.5)
    e, t = rng.integers(0, n_keys, n_trials), rng.integers(0, n_keys, n_trials)
    trials = Trials.from_pairs([keys[i] for i in e], [keys[i] for i in t], rng.random(n_trials) < 0.5)
    return emb, trials, e, t


def direct_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_cosine_matches_direct_numpy():
    emb, trials, e, t = make_case()
    scored = cosine_scores(trials, emb)
    expected = direct_cosine(emb.matrix[e], emb.matrix[t])
    np.testing.assert_allclose(scored.scores, expected, rtol=1e-5, atol=1e-6)
    assert scored.skipped == 0 and scored.trials is trials and scored.scores.dtype == np.float32
    original = emb.matrix.copy()
    cosine_scores(trials, emb, mean=np.ones(8, np.float32))
    assert np.array_equal(emb.matrix, original)  # normalised in a copy


def test_rowwise_dot_in_chunks():
    rng = np.random.default_rng(4)
    vectors = rng.standard_normal((10, 3)).astype(np.float32)
    left, right = rng.integers(0, 10, 50), rng.integers(0, 10, 50)
    np.testing.assert_allclose(cosine.rowwise_dot(vectors, left, right, chunk=7),
                               np.sum(vectors[left] * vectors[right], axis=1), rtol=1e-6)


def test_mean_subtraction(tmp_path):
    emb, trials, e, t = make_case()
    rng = np.random.default_rng(1)
    train = rng.standard_normal((50, 8)).astype(np.float32) + 2.0
    save_embeddings(tmp_path / "train", [f"t{i}" for i in range(50)], train)
    mean = mean_embedding(tmp_path / "train", chunk_rows=16)
    np.testing.assert_allclose(mean, train.mean(axis=0), rtol=1e-5)
    scored = cosine_scores(trials, emb, mean=mean)
    np.testing.assert_allclose(scored.scores, direct_cosine(emb.matrix[e] - mean, emb.matrix[t] - mean),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(EmbeddingError, match="dimensions"):
        cosine_scores(trials, emb, mean=np.zeros(3, np.float32))


def test_missing_keys_fail_with_count_or_are_skipped(caplog):
    emb, trials, e, t = make_case()
    absent = {"spk1/utt1.wav", "spk2/utt7.wav"}
    partial = Embeddings([k for k in emb.keys if k not in absent],
                         np.stack([emb.matrix[i] for i, k in enumerate(emb.keys) if k not in absent]))
    uses = np.array([a in absent or b in absent for a, b in zip(trials.enroll, trials.test)])
    with pytest.raises(TrialError) as err:
        cosine_scores(trials, partial)
    message = str(err.value)
    assert f"{uses.sum()} of 200 trials" in message and "2 utterances" in message
    assert "spk1/utt1.wav" in message and "--skip-missing" in message
    with caplog.at_level(logging.WARNING):
        scored = cosine_scores(trials, partial, skip_missing=True)
    assert scored.skipped == uses.sum() and sorted(scored.missing_keys) == sorted(absent)
    assert "skipping" in caplog.text
    keep = ~uses
    np.testing.assert_allclose(scored.scores, direct_cosine(emb.matrix[e[keep]], emb.matrix[t[keep]]),
                               rtol=1e-5, atol=1e-6)


def test_zero_embedding_is_an_error():
    emb = Embeddings(["a", "b"], np.array([[1.0, 0.0], [0.0, 0.0]], np.float32))
    with pytest.raises(EmbeddingError, match="zero or not finite.*first: b"):
        cosine_scores(Trials.from_pairs(["a"], ["b"], [True]), emb)


def brute_force_asnorm(emb: np.ndarray, cohort: np.ndarray, e: np.ndarray, t: np.ndarray, top_n: int):
    out = []
    for i, j in zip(e, t):
        a, b = emb[i] / np.linalg.norm(emb[i]), emb[j] / np.linalg.norm(emb[j])
        c = cohort / np.linalg.norm(cohort, axis=1, keepdims=True)
        s = a @ b
        top_a, top_b = np.sort(c @ a)[::-1][:top_n], np.sort(c @ b)[::-1][:top_n]
        out.append(0.5 * ((s - top_a.mean()) / top_a.std() + (s - top_b.mean()) / top_b.std()))
    return np.array(out)


def test_asnorm_matches_brute_force_per_trial(tmp_path):
    emb, trials, e, t = make_case(n_trials=60)
    rng = np.random.default_rng(2)
    cohort_matrix = rng.standard_normal((40, 8)).astype(np.float32)
    save_embeddings(tmp_path / "cohort", [f"c{i}" for i in range(40)], cohort_matrix)
    cohort = load_cohort(tmp_path / "cohort")
    scored = asnorm_scores(trials, emb, cohort, top_n=10)
    expected = brute_force_asnorm(emb.matrix, cohort_matrix, e, t, 10)
    np.testing.assert_allclose(scored.scores, expected, rtol=1e-4, atol=1e-4)


def test_cohort_stats_are_chunked_and_clip_top_n(caplog):
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((25, 4)).astype(np.float32)
    cohort = rng.standard_normal((9, 4)).astype(np.float32)
    whole = cohort_stats(vectors, cohort, top_n=3)
    chunked = cohort_stats(vectors, cohort, top_n=3, chunk_bytes=4 * 9 * 2)  # 2 rows at a time
    np.testing.assert_array_equal(whole.mean, chunked.mean)
    top = np.sort(vectors @ cohort.T, axis=1)[:, -3:]
    np.testing.assert_allclose(whole.mean, top.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(whole.std, top.std(axis=1), rtol=1e-5)
    with caplog.at_level(logging.WARNING):
        everything = cohort_stats(vectors, cohort, top_n=50)
    assert "exceeds the cohort size 9" in caplog.text
    np.testing.assert_allclose(everything.mean, (vectors @ cohort.T).mean(axis=1), rtol=1e-5, atol=1e-6)
