"""`speakervlad enroll | verify | identify | speakers`: output and exit codes 0 / 1 / 2."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import speech, write_wav
from helpers_api import make_checkpoint, one_torch_thread

from speakervlad.cli.main import main
from speakervlad.data.padding import pad_with_non_speech

STRICT = ["--threshold", "0.9999"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    files = {f"s{k}": write_wav(root / f"s{k}.wav", speech(4.0, speaker=k)) for k in range(1, 4)}
    files["padded1"] = write_wav(root / "padded1.wav",
                                 pad_with_non_speech(speech(4.0, speaker=1), np.random.default_rng(0)).wave)
    files["noise"] = write_wav(root / "noise.wav", 0.05 * np.random.default_rng(0).standard_normal(160_000))
    return {"root": root, "model": make_checkpoint(root / "model.pt"), "db": root / "voices.db", **files}


def run(capsys: pytest.CaptureFixture, *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_enroll_verify_identify_speakers(setup: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    model, db = setup["model"], setup["db"]
    code, out, _ = run(capsys, "enroll", "--model", model, "--db", db, "--speaker", "one", setup["s1"])
    assert code == 0 and "enrolled one: 1 recording(s) added, 1 in total" in out
    assert re.search(r"s1.wav: \d\.\d\d s of speech in 4.00 s\n", out), out
    code, out, _ = run(capsys, "enroll", "--model", model, "--db", db, "--speaker", "two", "--json", setup["s2"])
    answer = json.loads(out)
    assert code == 0 and {k: answer[k] for k in ("speaker_id", "added", "recordings")} == {
        "speaker_id": "two", "added": 1, "recordings": 1}
    [added] = answer["added_recordings"]
    assert added["label"] == "s2.wav" and 2.0 <= added["speech_seconds"] <= added["seconds"] == 4.0
    assert added["ghost_mass"] is None

    code, out, _ = run(capsys, "verify", "--model", model, "--db", db, "--speaker", "one", *STRICT, setup["s1"])
    assert code == 0 and out.startswith("ACCEPTED") and "explicit threshold" in out
    code, out, _ = run(capsys, "verify", "--model", model, "--db", db, "--speaker", "one", *STRICT, "--json",
                       setup["s2"])
    decision = json.loads(out)
    assert code == 1 and decision["accepted"] is False and decision["llr"] is None
    assert decision["threshold"] == 0.9999 and decision["score"] < 0.9999
    assert 2.0 <= decision["speech_seconds"] <= 4.0 and decision["ghost_mass"] is None

    code, out, _ = run(capsys, "identify", "--model", model, "--db", db, *STRICT, "--json", setup["s2"])
    assert code == 0 and json.loads(out)["best"] == "two"
    code, out, _ = run(capsys, "identify", "--model", model, "--db", db, *STRICT, "--top-k", "1", setup["s3"])
    assert code == 1 and out.startswith("best: unknown") and len(out.strip().splitlines()) == 2

    code, out, _ = run(capsys, "speakers", "--db", db, "--json")
    assert code == 0 and [(s["speaker_id"], s["recordings"]) for s in json.loads(out)] == [("one", 1), ("two", 1)]
    code, out, _ = run(capsys, "speakers", "--db", db, "show", "two")
    assert code == 0 and out.startswith("two: 1 recording(s)") and "s2.wav" in out and "s of speech" in out
    code, out, _ = run(capsys, "speakers", "--db", db, "remove", "two")
    assert code == 0 and "removed two (1 recording(s))" in out
    code, out, _ = run(capsys, "speakers", "--db", db)
    assert code == 0 and "1 speaker(s)" in out and "two" not in out


def test_compare_two_files(setup: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, "verify", "--model", setup["model"], *STRICT, setup["s1"], setup["s1"])
    assert code == 0 and "are the same speaker" in out
    code, out, _ = run(capsys, "verify", "--model", setup["model"], *STRICT, setup["s1"], setup["s3"])
    assert code == 1 and out.startswith("REJECTED")


def test_noise_is_not_enrolled_and_padding_is_left_out(setup: dict[str, Path], capsys: pytest.CaptureFixture,
                                                      tmp_path: Path) -> None:
    model, db = setup["model"], tmp_path / "voices.db"
    code, out, err = run(capsys, "enroll", "--model", model, "--db", db, "--speaker", "ann", setup["s1"],
                         setup["noise"])
    assert code == 2 and out == ""
    assert "noise.wav: 0.00 s of speech found, enrollment needs at least 2.00 s" in err
    assert not db.exists()  # nothing was stored, and no empty store was left to look enrolled
    assert run(capsys, "enroll", "--model", model, "--db", db, "--speaker", "ann", setup["s1"])[0] == 0
    scores = {}
    for flag in ("--vad", "--no-vad"):
        for name in ("s1", "padded1"):
            code, out, _ = run(capsys, "verify", "--model", model, "--db", db, "--speaker", "ann", "--json",
                               "--threshold", "0.5", flag, setup[name])
            scores[flag, name] = json.loads(out)["score"]
    assert scores["--vad", "s1"] == pytest.approx(1.0, abs=1e-5)
    assert scores["--vad", "padded1"] == pytest.approx(scores["--vad", "s1"], abs=0.01)  # the clean one's score
    assert scores["--no-vad", "padded1"] < scores["--vad", "padded1"] - 0.01
    code, _, err = run(capsys, "verify", "--model", model, "--db", db, "--speaker", "ann", "--threshold", "0.5",
                       "--min-speech", "30", setup["s1"])
    assert code == 2 and "verification needs at least 30.00 s" in err


@pytest.mark.parametrize("argv, message", [
    (["verify", "--model", "{model}", "{s1}", "{s2}"], "pass an explicit score threshold"),
    (["verify", "--model", "{model}", "--far", "0.01", "{s1}", "{s2}"], "needs a calibrated model"),
    (["verify", "--model", "{model}", *STRICT, "{s1}"], "exactly two recordings"),
    (["verify", "--model", "{model}", "--db", "{root}/none.db", "--speaker", "x", *STRICT, "{s1}"],
     "no enrollment store there"),
    (["verify", "--model", "{model}", "--db", "{db}", "--speaker", "ghost", *STRICT, "{s1}"], "not enrolled"),
    (["verify", "--model", "{root}/missing.pt", *STRICT, "{s1}", "{s2}"], "missing.pt"),
    (["enroll", "--model", "{model}", "--db", "{db}", "--speaker", "a b", "{s1}"], "invalid speaker id"),
    (["enroll", "--model", "{model}", "--db", "{db}", "--speaker", "x", "{root}/nope.wav"], "no such file"),
    (["speakers", "--db", "{db}", "remove", "ghost"], "not enrolled"),
    (["speakers", "--db", "{db}", "remove"], "needs a speaker id"),
])
def test_errors_exit_2_with_one_line(setup: dict[str, Path], capsys: pytest.CaptureFixture,
                                     argv: list[str], message: str) -> None:
    code, out, err = run(capsys, *[a.format(**setup) for a in argv])
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1


def test_real_entry_point_exit_code(setup: dict[str, Path]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "speakervlad.cli.main", "verify", "--model", str(setup["model"]), *STRICT,
         str(setup["s1"]), str(setup["s2"])],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith("REJECTED")
