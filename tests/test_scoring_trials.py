"""Trial lists (VoxCeleb and Kaldi formats) and score files."""
from __future__ import annotations

import numpy as np
import pytest

from speakervlad.errors import TrialError
from speakervlad.scoring.scorefile import read_scores, write_scores
from speakervlad.scoring.trials import KALDI, VOXCELEB, Trials, factorize, factorize_pairs, read_trials

VOX = """1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav
0 id10270/x6uYqmx31kE/00001.wav id10300/ize_eiCFEg0/00003.wav
1 id10300/ize_eiCFEg0/00003.wav id10300/ize_eiCFEg0/00004.wav
"""


def test_voxceleb_format(tmp_path):
    path = tmp_path / "veri.txt"
    path.write_text(VOX)
    trials = read_trials(path)
    assert trials.format == VOXCELEB and len(trials) == 3 and trials.name == "veri"
    assert trials.labels.tolist() == [True, False, True]
    assert trials.enroll == [line.split()[1] for line in VOX.splitlines()]
    assert trials.test == [line.split()[2] for line in VOX.splitlines()]
    assert trials.keys.tolist() == sorted(set(VOX.split()) - {"0", "1"})
    assert (trials.n_target, trials.n_nontarget) == (2, 1)


def test_kaldi_format_with_tabs_crlf_blank_lines_and_no_final_newline(tmp_path):
    path = tmp_path / "trials"
    path.write_bytes(b"utt1\tutt2\ttarget\r\n\r\n  utt1  utt3 nontarget\r\nutt3 utt2 nontarget")
    trials = read_trials(path)
    assert trials.format == KALDI
    assert trials.enroll == ["utt1", "utt1", "utt3"] and trials.test == ["utt2", "utt3", "utt2"]
    assert trials.labels.tolist() == [True, False, False]


@pytest.mark.parametrize("text, line, problem", [
    ("1 a b\n0 a c d\n", 2, "has 4 fields; expected 'LABEL ENROLL TEST'"),
    ("1 a b\n\n0 a\n", 3, "has 2 fields"),
    ("1 a b\n1 a b 0\nc d\n", 2, "has 4 fields"),  # as many fields as 3 good lines: still caught
    ("1 a b\n1 a c 0\nd e", 2, "has 4 fields"),
    ("1 a b\n0 a c\ntarget a c\n", 3, "has label 'target'; expected 'LABEL ENROLL TEST' with LABEL 1"),
    ("a b target\na c nontarget\na c 1\n", 3, "has label '1'; expected 'ENROLL TEST target|nontarget'"),
    ("1 a b\n\n\n2 a c\n", 4, "has label '2'"),
])
def test_malformed_line_names_file_line_and_expected_format(tmp_path, text, line, problem):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(TrialError) as err:
        read_trials(path)
    assert f"{path}, line {line}:" in str(err.value)
    assert problem in str(err.value)


def test_unknown_format_empty_and_missing_files(tmp_path):
    (tmp_path / "pairs.txt").write_text("\n  a b\n")
    with pytest.raises(TrialError, match=r"pairs.txt, line 2: cannot tell the trial format .*VoxCeleb.*Kaldi"):
        read_trials(tmp_path / "pairs.txt")
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(TrialError, match="empty"):
        read_trials(tmp_path / "empty.txt")
    with pytest.raises(TrialError, match="cannot read trial list"):
        read_trials(tmp_path / "nope.txt")


def test_from_pairs_and_subset():
    trials = Trials.from_pairs(["b", "a", "b"], ["c", "c", "a"], [1, 0, 0])
    assert trials.keys.tolist() == ["a", "b", "c"]
    assert trials.enroll == ["b", "a", "b"] and trials.test == ["c", "c", "a"]
    part = trials.subset(np.array([True, False, True]))
    assert part.enroll == ["b", "b"] and part.labels.tolist() == [True, False]
    with pytest.raises(TrialError, match="same length"):
        Trials.from_pairs(["a"], ["b", "c"], [1])


def test_factorize_equals_np_unique():
    rng = np.random.default_rng(0)
    words = np.array([b"", b"a", b"ab", b"a" * 30, b"id10270/x6uYqmx31kE/00001.wav", b"b\xc3\xa9"])
    strings = words[rng.integers(0, len(words), 1000)]
    unique, inverse = factorize(strings)
    expected_unique, expected_inverse = np.unique(strings, return_inverse=True)
    assert unique.tolist() == expected_unique.tolist()
    assert inverse.tolist() == expected_inverse.tolist()


def test_factorize_pairs_with_runs_of_enroll_keys():
    rng = np.random.default_rng(1)
    words = np.array([b"a", b"b", b"c", b"d"])
    enroll = np.sort(words[rng.integers(0, 4, 50)])  # runs, as in trial lists
    test = words[rng.integers(0, 3, 50)]
    keys, enroll_idx, test_idx = factorize_pairs(enroll, test)
    assert keys.tolist() == sorted(set(enroll.tolist()) | set(test.tolist()))
    assert keys[enroll_idx].tolist() == enroll.tolist() and keys[test_idx].tolist() == test.tolist()


def test_score_file_round_trip_is_exact_and_aligns_any_order(tmp_path):
    trials = Trials.from_pairs(["a", "a", "b", "c"], ["b", "c", "c", "a"], [1, 0, 0, 1])
    scores = np.array([0.1234567, -1e-7, 3.0, 0.3], np.float32)
    write_scores(tmp_path / "s.txt", trials, scores)
    assert (tmp_path / "s.txt").read_text().splitlines()[0] == "a b 0.123456702"
    kept, aligned = read_scores(tmp_path / "s.txt").align(trials)
    assert kept is trials and np.array_equal(aligned.astype(np.float32), scores)
    lines = (tmp_path / "s.txt").read_text().splitlines()
    (tmp_path / "shuffled.txt").write_text("\n".join(lines[::-1] + ["x y 9.0"]) + "\n")
    kept, aligned = read_scores(tmp_path / "shuffled.txt").align(trials)
    assert len(kept) == 4 and np.array_equal(aligned.astype(np.float32), scores)


def test_score_file_missing_scores_fail_or_are_skipped(tmp_path):
    trials = Trials.from_pairs(["a", "a", "b"], ["b", "c", "c"], [1, 0, 0], source="list.txt")
    (tmp_path / "s.txt").write_text("a b 0.5\nb c 0.1\n")
    with pytest.raises(TrialError, match=r"1 of 3 trials of list.txt have no score .*first: a c.*--skip-missing"):
        read_scores(tmp_path / "s.txt").align(trials)
    kept, aligned = read_scores(tmp_path / "s.txt").align(trials, skip_missing=True)
    assert kept.enroll == ["a", "b"] and aligned.tolist() == [0.5, 0.1]


def test_score_file_malformed_lines(tmp_path):
    (tmp_path / "s.txt").write_text("a b 0.5\na c\n")
    with pytest.raises(TrialError, match=r"s.txt, line 2: 'a c' has 2 fields"):
        read_scores(tmp_path / "s.txt")
    (tmp_path / "s.txt").write_text("a b 0.5\n\na c high\n")
    with pytest.raises(TrialError, match=r"s.txt, line 3: score 'high' is not a number"):
        read_scores(tmp_path / "s.txt")
