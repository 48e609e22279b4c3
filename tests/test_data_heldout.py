"""Held-out speakers, trial construction and segment cutting."""
from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speakervlad.data.heldout import cut_segments, make_trials, split_speakers
from speakervlad.data.lists import Utterance, scan_folder
from speakervlad.errors import ConfigError, TrialError
from speakervlad.scoring.trials import write_trials

LIBRI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "librispeech-train-clean-100-subset"


def corpus(counts: dict[str, int]) -> list[Utterance]:
    return [Utterance(f"{spk}/{i}.wav", spk, f"/c/{spk}/{i}.wav") for spk, n in counts.items() for i in range(n)]


def test_split_speakers_is_disjoint_seeded_and_keeps_order():
    utts = corpus({f"s{i:02d}": 2 for i in range(20)})
    train, held = split_speakers(utts, 5, seed=3)
    held_speakers = {u.speaker for u in held}
    assert len(held_speakers) == 5 and not held_speakers & {u.speaker for u in train}
    assert len(train) + len(held) == len(utts)
    assert train == [u for u in utts if u.speaker not in held_speakers]  # original order
    assert split_speakers(utts, 5, seed=3) == (train, held)
    assert {u.speaker for u in split_speakers(utts, 5, seed=4)[1]} != held_speakers
    with pytest.raises(ConfigError, match="cannot hold out 20 of 20"):
        split_speakers(utts, 20, seed=0)


def test_make_trials_balanced_distinct_and_deterministic():
    utts = corpus({"a": 5, "b": 3, "c": 4, "d": 1})
    speaker = {u.key: u.speaker for u in utts}
    trials = make_trials(utts, 20, seed=7)
    assert len(trials) == 20 and sum(t for _, _, t in trials) == 10
    for enroll, test, target in trials:
        assert enroll != test
        assert (speaker[enroll] == speaker[test]) == target
    assert len({frozenset(t[:2]) for t in trials}) == 20  # each pair once
    assert make_trials(utts, 20, seed=7) == trials
    assert make_trials(utts, 20, seed=8) != trials


def test_make_trials_enumerates_every_pair_when_asked_for_all():
    utts = corpus({"a": 4, "b": 3, "c": 2})
    same = {frozenset((x.key, y.key)) for x, y in itertools.combinations(utts, 2) if x.speaker == y.speaker}
    cross = {frozenset((x.key, y.key)) for x, y in itertools.combinations(utts, 2) if x.speaker != y.speaker}
    trials = make_trials(utts, 2 * len(same), seed=0)  # all 10 target pairs, 10 of the 26 non-target
    assert {frozenset(t[:2]) for t in trials if t[2]} == same
    assert {frozenset(t[:2]) for t in trials if not t[2]} < cross
    everything = make_trials(utts, len(same) + len(cross), seed=0, target_fraction=len(same) / (len(same) + len(cross)))
    assert {frozenset(t[:2]) for t in everything if not t[2]} == cross


def test_make_trials_keeps_the_fraction_when_targets_run_out(caplog):
    utts = corpus({"a": 2, "b": 2, "c": 1})  # 2 target pairs exist
    trials = make_trials(utts, 100, seed=0)
    assert sum(t for _, _, t in trials) == 2 and len(trials) == 4
    assert "only 2 target pairs exist" in caplog.text
    with pytest.raises(TrialError, match="cut recordings into segments"):
        make_trials(corpus({"a": 1, "b": 1}), 10, seed=0)


def test_write_trials_voxceleb_format(tmp_path):
    path = tmp_path / "trials.txt"
    write_trials(path, [("a/1.wav", "a/2.wav", True), ("a/1.wav", "b/1.wav", False)])
    assert path.read_text() == "1 a/1.wav a/2.wav\n0 a/1.wav b/1.wav\n"
    with pytest.raises(TrialError, match="spaces"):
        write_trials(path, [("a 1.wav", "b.wav", True)])


def test_cut_segments_writes_consecutive_pieces(tmp_path):
    wave = np.random.default_rng(0).uniform(-0.5, 0.5, 56000).astype(np.float32)  # 3.5 s
    sf.write(tmp_path / "19-198-0001.flac", wave, 16000)
    utt = Utterance("19-198-0001.flac", "19", str(tmp_path / "19-198-0001.flac"))
    pieces = cut_segments([utt], tmp_path / "seg", segment_seconds=1.0)
    assert [p.key for p in pieces] == [f"19-198-0001_{k:03d}.wav" for k in range(3)]
    assert all(p.speaker == "19" and Path(p.path) == tmp_path / "seg" / p.key for p in pieces)
    for k, piece in enumerate(pieces):
        np.testing.assert_allclose(sf.read(piece.path)[0], wave[k * 16000:(k + 1) * 16000], atol=1 / 32768)


@pytest.mark.realdata
@pytest.mark.skipif(not LIBRI.is_dir(), reason="needs ../shared/data (real speech)")
def test_librispeech_subset_lists_251_speakers_and_holds_out_51():
    utts = scan_folder(LIBRI, pattern=r"^(?P<speaker>\d+)-")
    assert len({u.speaker for u in utts}) == 251 and len(utts) == 251
    train, held = split_speakers(utts, 51, seed=0)
    assert len({u.speaker for u in held}) == 51 and len({u.speaker for u in train}) == 200
    assert all(os.path.isfile(u.path) for u in held)
