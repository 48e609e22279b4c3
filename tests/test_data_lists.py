"""Utterance lists: corpus layouts, TSV round trip, readability checks, speaker index."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speakervlad.data.lists import (
    SpeakerIndex,
    Utterance,
    add_speed_perturbation,
    build_list,
    read_kaldi_dir,
    read_list,
    scan_folder,
    scan_voxceleb,
    write_list,
)
from speakervlad.data.readable import check_readable
from speakervlad.errors import ConfigError

RATE = 16000


def write_wav(path: Path, seconds: float = 0.5, rate: int = RATE, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    wave = np.random.default_rng(seed).uniform(-0.5, 0.5, int(seconds * rate)).astype(np.float32)
    sf.write(path, wave, rate, format="FLAC" if path.suffix == ".flac" else "WAV")
    return path


def voxceleb_tree(root: Path) -> Path:
    for rel in ["id10001/vidA/00001.wav", "id10001/vidA/00002.wav", "id10001/vidB/00001.wav",
                "id10002/vidC/00001.wav"]:
        write_wav(root / rel)
    (root / "id10002" / "vidC" / "notes.txt").write_text("not audio")
    return root


def test_scan_voxceleb_keys_are_relative_paths_and_speakers_first_component(tmp_path):
    root = voxceleb_tree(tmp_path / "vox")
    utts = scan_voxceleb(root)
    assert [u.key for u in utts] == ["id10001/vidA/00001.wav", "id10001/vidA/00002.wav",
                                     "id10001/vidB/00001.wav", "id10002/vidC/00001.wav"]
    assert [u.speaker for u in utts] == ["id10001"] * 3 + ["id10002"]
    assert all(Path(u.path) == root / u.key and u.speed == 1.0 for u in utts)
    assert build_list(root) == utts  # auto-detected as VoxCeleb


def test_scan_voxceleb_without_audio_says_what_layout_is_expected(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="idXXXXX/<video>/NNNNN"):
        scan_voxceleb(tmp_path / "empty")


def kaldi_dir(tmp_path: Path) -> Path:
    data = tmp_path / "kaldi"
    data.mkdir()
    wavs = {utt: write_wav(tmp_path / "audio" / f"{utt}.wav") for utt in ["u1", "u2", "u3", "u4"]}
    (data / "wav.scp").write_text("".join(f"{u} {wavs[u]}\n" for u in ["u1", "u2", "u3"]))
    (data / "utt2spk").write_text("u1 alice\nu2 bob\nu4 carol\n")
    return data


def test_read_kaldi_dir_reports_utterances_missing_from_either_file(tmp_path, caplog):
    data = kaldi_dir(tmp_path)
    with caplog.at_level(logging.WARNING):
        utts = read_kaldi_dir(data)
    assert [(u.key, u.speaker) for u in utts] == [("u1", "alice"), ("u2", "bob")]
    assert Path(utts[0].path) == tmp_path / "audio" / "u1.wav"
    text = caplog.text
    assert "1 utterance(s) in wav.scp but not in utt2spk" in text and "u3" in text
    assert "1 utterance(s) in utt2spk but not in wav.scp" in text and "u4" in text
    assert build_list(data) == utts  # auto-detected as Kaldi


def test_read_kaldi_dir_rejects_piped_commands_and_segments(tmp_path):
    data = kaldi_dir(tmp_path)
    (data / "wav.scp").write_text("u1 /a/u1.wav\nu2 sox /a/u2.wav -t wav - |\n")
    with pytest.raises(ConfigError, match=r"wav.scp:2: 'u2' is a piped command.*unsupported"):
        read_kaldi_dir(data)
    (data / "segments").write_text("u1 rec1 0.0 1.0\n")
    with pytest.raises(ConfigError, match="segments"):
        read_kaldi_dir(data)


def test_scan_folder_speaker_folders_any_depth_and_flat_files_reported(tmp_path, caplog):
    root = tmp_path / "corpus"
    for rel in ["spkB/ch1/b1.flac", "spkA/a1.wav", "spkA/sub/deeper/a2.wav"]:
        write_wav(root / rel)
    write_wav(root / "stray.wav")
    with caplog.at_level(logging.WARNING):
        utts = scan_folder(root)
    assert [(u.key, u.speaker) for u in utts] == [
        ("spkA/a1.wav", "spkA"), ("spkA/sub/deeper/a2.wav", "spkA"), ("spkB/ch1/b1.flac", "spkB")]
    assert "1 files directly in the root" in caplog.text and "stray.wav" in caplog.text
    assert build_list(root) == utts  # not VoxCeleb-like: a plain folder


def test_scan_folder_flat_with_pattern_like_librispeech(tmp_path, caplog):
    root = tmp_path / "flat"
    for name in ["19-198-0001.flac", "19-198-0002.flac", "103-1240-0000.flac", "README.flac"]:
        write_wav(root / name)
    with caplog.at_level(logging.WARNING):
        utts = scan_folder(root, pattern=r"^(?P<speaker>\d+)-")
    assert [(u.key, u.speaker) for u in utts] == [
        ("103-1240-0000.flac", "103"), ("19-198-0001.flac", "19"), ("19-198-0002.flac", "19")]
    assert "1 file names not matching" in caplog.text and "README.flac" in caplog.text
    assert build_list(root, pattern=r"^(?P<speaker>\d+)-") == utts
    with pytest.raises(ConfigError, match=r"\(\?P<speaker>"):
        scan_folder(root, pattern=r"^(\d+)-")


def test_paths_are_absolute_when_the_root_is_given_relative(tmp_path, monkeypatch):
    write_wav(tmp_path / "corpus" / "spk" / "a.wav")
    monkeypatch.chdir(tmp_path)
    utts = build_list("corpus")
    assert utts[0].path == str(tmp_path / "corpus" / "spk" / "a.wav")
    write_list("train.tsv", utts)
    monkeypatch.chdir(tmp_path / "corpus")
    assert read_list("../train.tsv") == utts


def test_scan_folder_with_speaker_list_file(tmp_path):
    root = tmp_path / "any"
    write_wav(root / "x" / "one file.wav")
    write_wav(root / "two.wav")
    listing = tmp_path / "speakers.txt"
    listing.write_text("# path speaker\nx/one file.wav ann\ntwo.wav ben\n")
    utts = scan_folder(root, speaker_list=listing)
    assert [(u.key, u.speaker, u.path) for u in utts] == [
        ("x/one file.wav", "ann", str(root / "x" / "one file.wav")), ("two.wav", "ben", str(root / "two.wav"))]
    assert build_list(listing, kind="folder") == [
        Utterance(u.key, u.speaker, str(tmp_path / u.key)) for u in utts]


def test_list_round_trip_with_speed_and_relative_paths(tmp_path):
    utts = [Utterance("a/1.wav", "a", "/data/a/1.wav"), Utterance("sp1.1-a/1.wav", "sp1.1-a", "/data/a/1.wav", 1.1)]
    path = tmp_path / "train.tsv"
    write_list(path, utts)
    lines = path.read_text().splitlines()
    assert lines[0].startswith("#") and lines[2] == "sp1.1-a/1.wav\tsp1.1-a\t/data/a/1.wav\t1.1"
    assert read_list(path) == utts
    assert build_list(path) == utts  # auto-detected by its header
    path.write_text("b/2.wav\tb\trel/2.wav\n")
    assert read_list(path)[0].path == str(tmp_path / "rel" / "2.wav")


@pytest.mark.parametrize("line, message", [
    ("k\tspk\n", r"bad.tsv:2: expected key<TAB>speaker<TAB>path"),
    ("k\tspk\t/p.wav\tfast\n", r"bad.tsv:2: speed must be a positive number"),
    ("k\tspk\t/p.wav\t0\n", r"bad.tsv:2: speed must be a positive number"),
    ("k0\tspk\t/q.wav\n", r"bad.tsv:2: key 'k0' already used on line 1"),
])
def test_read_list_names_file_and_line_of_malformed_lines(tmp_path, line, message):
    path = tmp_path / "bad.tsv"
    path.write_text("k0\tspk\t/p.wav\n" + line)
    with pytest.raises(ConfigError, match=message):
        read_list(path)


def test_check_readable_skips_and_reports_unusable_files(tmp_path, caplog):
    good = write_wav(tmp_path / "good.wav", seconds=1.0)
    short = write_wav(tmp_path / "short.flac", seconds=0.3)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio at all")
    utts = [Utterance(p.name, "s", str(p)) for p in [good, short, empty, junk, tmp_path / "gone.wav"]]
    utts.append(Utterance("sp1.1-good.wav", "sp1.1-s", str(good), 1.1))  # 0.91 s: kept
    report = tmp_path / "unreadable.tsv"
    with caplog.at_level(logging.WARNING):
        kept = check_readable(utts, report_path=report, min_seconds=0.5, jobs=2)
    assert kept == [utts[0], utts[5]]
    rows = [line.split("\t") for line in report.read_text().splitlines()[1:]]
    assert [(key, path) for key, path, _ in rows] == [(u.key, u.path) for u in utts[1:5]]
    reasons = [why for _, _, why in rows]
    assert reasons[0] == "too short: 0.300 s, min_seconds is 0.5"
    assert reasons[1] == "empty file (0 bytes)"
    assert reasons[2].startswith("unreadable header")
    assert reasons[3] == "no such file"
    assert "skipped 4 of 6 utterances" in caplog.text and str(report) in caplog.text


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_check_readable_probes_ffmpeg_containers(tmp_path):
    import subprocess

    m4a = tmp_path / "clip.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=d=1.0", "-ar", "16000", str(m4a)],
                   check=True)
    broken = tmp_path / "broken.m4a"
    broken.write_bytes(b"\x00\x00\x00\x18ftypM4A garbage")
    utts = [Utterance("clip", "s", str(m4a)), Utterance("broken", "s", str(broken))]
    report = tmp_path / "report.tsv"
    assert check_readable(utts, report_path=report, min_seconds=0.9) == utts[:1]
    assert "broken\t" in report.read_text() and "ffprobe" in report.read_text()


def test_speaker_index_sorted_ids_round_trip_and_unknown_speakers(tmp_path):
    utts = [Utterance(f"k{i}", spk, "") for i, spk in enumerate(["carol", "alice", "bob", "alice"])]
    index = SpeakerIndex.from_utterances(utts)
    assert index.speakers == ("alice", "bob", "carol") and len(index) == 3
    np.testing.assert_array_equal(index.labels(utts), [2, 0, 1, 0])
    assert index.index("bob") == 1 and "carol" in index
    path = tmp_path / "speakers.txt"
    index.save(path)
    assert path.read_text() == "alice\nbob\ncarol\n"
    assert SpeakerIndex.load(path) == index
    with pytest.raises(ConfigError, match="'dave' is not in the speaker index"):
        index.index("dave")
    with pytest.raises(ConfigError, match=r"1 speaker\(s\) not in the speaker index"):
        index.labels([Utterance("x", "dave", "")])
    path.write_text("alice\nbob\nalice\n")
    with pytest.raises(ConfigError, match=r"speakers.txt:3: speaker 'alice' already on line 1"):
        SpeakerIndex.load(path)


def test_speed_perturbation_adds_new_speakers():
    utts = [Utterance("a/1.wav", "a", "/a1"), Utterance("a/2.wav", "a", "/a2"), Utterance("b/1.wav", "b", "/b1")]
    out = add_speed_perturbation(utts)
    assert out[:3] == utts and len(out) == 9
    assert out[3] == Utterance("sp0.9-a/1.wav", "sp0.9-a", "/a1", 0.9)
    assert out[8] == Utterance("sp1.1-b/1.wav", "sp1.1-b", "/b1", 1.1)
    assert len(SpeakerIndex.from_utterances(out)) == 6 and len({u.key for u in out}) == 9
    with pytest.raises(ConfigError, match="not 1"):
        add_speed_perturbation(utts, factors=(1.0,))
