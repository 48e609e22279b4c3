"""recipes/voxceleb/run.sh on a tiny fake corpus in the VoxCeleb layout.

Stages 2-8 run end to end (M4A conversion, lists, training, averaging, sharded
extraction, cosine and AS-norm scoring, evaluation table, calibration and ONNX
export); stage 1 is checked for its report of missing data and for downloads
from a local file:// mirror.
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from conftest import TINY, tone, write_wav

from speakervlad.checkpoint import load_checkpoint
from speakervlad.config import load_config, to_dict
from speakervlad.data.lists import read_list
from speakervlad.embedding.directory import load_embeddings
from speakervlad.scoring.scorefile import read_scores
from speakervlad.scoring.trials import read_trials

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "voxceleb"
TRAIN = TINY + ["model.frontend.normalize=none", "data.crop_seconds=0.5", "data.batch_size=8", "data.num_workers=0",
                "train.epochs=2",
                "augment.noise_prob=0", "augment.reverb_prob=0", "augment.speed_perturb=false",
                "optim.optimizer=adam", "optim.lr=0.001", "optim.scheduler=constant"]
VOX1_TEST = {f"id1027{s}": 2 for s in range(3)}  # speaker -> videos (2 utterances each)
VOX1_DEV = {f"id1000{s}": 1 for s in range(1, 3)}
VOX2_DEV = {f"id0001{s}": 2 for s in range(4)}
LISTS = ["veri_test2.txt", "list_test_all2.txt", "list_test_hard2.txt"]

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is needed for M4A")


def run_recipe(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "OMP_NUM_THREADS": "1"}
    env.pop("SPEAKERVLAD_MIRROR", None)
    return subprocess.run(["bash", str(RECIPE / "run.sh"), *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def _utterances(root: Path, speakers: dict[str, int], suffix: str, seed: int) -> list[Path]:
    """Write speaker/video/NNNNN.wav tones (pitch per speaker); ``suffix`` is the final extension."""
    paths = []
    for s, (speaker, videos) in enumerate(sorted(speakers.items())):
        for v in range(videos):
            for u in range(2):
                wave = tone(1.0 + 0.2 * u, freq=110.0 + 40 * s + 5 * v, seed=seed + 10 * s + 3 * v + u)
                path = write_wav(root / speaker / f"vid{v}XyZ" / f"{u + 1:05d}.wav", wave)
                paths.append(path.with_suffix(suffix))
    return paths


def _to_m4a(wavs: list[Path]) -> None:
    """Encode WAVs to AAC/M4A next to them with one ffmpeg call, then drop the WAVs."""
    command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y"]
    for wav in wavs:
        command += ["-i", str(wav)]
    for i, wav in enumerate(wavs):
        command += ["-map", f"{i}:a", "-c:a", "aac", "-b:a", "48k", str(wav.with_suffix(".m4a"))]
    subprocess.run(command, check=True)
    for wav in wavs:
        wav.unlink()


def _write_trials(path: Path, keys: list[str], count: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    lines = set()
    while len(lines) < count:
        a, b = rng.choice(len(keys), 2, replace=False)
        lines.add(f"{int(keys[a].split('/')[0] == keys[b].split('/')[0])} {keys[a]} {keys[b]}")
    path.write_text("\n".join(sorted(lines)) + "\n")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """DATA with voxceleb1/{test,dev}/wav, voxceleb2/dev/aac (M4A) and trials/ (official names)."""
    data = tmp_path_factory.mktemp("vox") / "data"
    test = _utterances(data / "voxceleb1/test/wav", VOX1_TEST, ".wav", 0)
    dev = _utterances(data / "voxceleb1/dev/wav", VOX1_DEV, ".wav", 100)
    m4a = _utterances(data / "voxceleb2/dev/aac", VOX2_DEV, ".m4a", 200)
    if shutil.which("ffmpeg"):
        _to_m4a([p.with_suffix(".wav") for p in m4a])
    test_keys = [p.relative_to(data / "voxceleb1/test/wav").as_posix() for p in test]
    all_keys = test_keys + [p.relative_to(data / "voxceleb1/dev/wav").as_posix() for p in dev]
    (data / "trials").mkdir()
    _write_trials(data / "trials/veri_test2.txt", test_keys, 66, 1)  # all pairs: enough to calibrate
    _write_trials(data / "trials/list_test_all2.txt", all_keys, 30, 2)
    _write_trials(data / "trials/list_test_hard2.txt", all_keys, 25, 3)
    return data


@needs_ffmpeg
def test_stages_2_to_8(corpus: Path, tmp_path_factory) -> None:
    exp = tmp_path_factory.mktemp("exp") / "tiny"
    wav_root = corpus / "voxceleb2/dev/wav"
    # a broken earlier output must be converted again (resumable, verified)
    broken = wav_root / "id00010/vid0XyZ/00001.wav"
    broken.parent.mkdir(parents=True)
    sf.write(broken, np.zeros(800, np.float32), 8000)

    done = run_recipe("--stage", "2", "--stop_stage", "8", "--data", str(corpus), "--exp", str(exp),
                      "--nj", "2", "--config", "resnet34_tstp", "--asnorm_top", "3", *TRAIN)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    # stage 2: every M4A converted to verified 16 kHz mono WAV of the same length
    m4a = sorted((corpus / "voxceleb2/dev/aac").rglob("*.m4a"))
    wavs = sorted(wav_root.rglob("*.wav"))
    assert len(m4a) == len(wavs) == 16
    for path in wavs:
        info = sf.info(path)
        assert (info.samplerate, info.channels) == (16000, 1)
        assert 0.95 <= info.frames / 16000 <= 1.3
    assert sf.info(broken).samplerate == 16000
    assert not list(wav_root.rglob(".*.tmp"))
    assert "16 converted" in done.stdout or "15 converted" in done.stdout
    lists = corpus / "lists"
    train = read_list(lists / "train.tsv")
    assert len(train) == 16 and {u.speaker for u in train} == set(VOX2_DEV)
    assert len(read_list(lists / "cohort.tsv")) == len(VOX2_DEV)
    needed = set()
    for name in LISTS:
        assert (lists / "trials" / name).read_text() == (corpus / "trials" / name).read_text()
        needed |= set(read_trials(lists / "trials" / name).keys.tolist())
    evaluation = read_list(lists / "eval.tsv")
    assert {u.key for u in evaluation} == needed
    assert all(Path(u.path).is_file() for u in evaluation)

    # stages 3-4: two epochs trained, averaged into a loadable model
    assert sorted(p.name for p in (exp / "checkpoints").glob("epoch_*.pt")) == ["epoch_001.pt", "epoch_002.pt"]
    assert len((exp / "metrics.csv").read_text().splitlines()) == 3
    averaged = load_checkpoint(exp / "avg_model.pt")
    assert averaged.provenance["averaged_from"] == ["epoch_001.pt", "epoch_002.pt"]
    assert averaged.config.model.embedding_dim == 16

    # stage 5: embeddings of exactly the utterances needed, merged from 2 shards
    emb = load_embeddings(exp / "embeddings/eval")
    assert set(emb.keys) == needed and emb.dim == 16
    assert len(load_embeddings(exp / "embeddings/cohort")) == len(VOX2_DEV)

    # stage 6: one score per trial, in trial order, for both scorings
    for name in LISTS:
        trials = read_trials(lists / "trials" / name)
        for kind in ("cosine", "asnorm"):
            path = exp / "scores" / f"{name[:-4]}.{kind}.txt"
            assert len(path.read_text().splitlines()) == len(trials)
            kept, scores = read_scores(path).align(trials)
            assert len(kept) == len(trials) and np.isfinite(scores).all()
    cosine = read_scores(exp / "scores/veri_test2.cosine.txt").align(read_trials(lists / "trials/veri_test2.txt"))[1]
    e = emb.get(read_trials(lists / "trials/veri_test2.txt").enroll)
    t = emb.get(read_trials(lists / "trials/veri_test2.txt").test)
    expected = (e * t).sum(1) / np.linalg.norm(e, axis=1) / np.linalg.norm(t, axis=1)
    np.testing.assert_allclose(cosine, expected, atol=1e-4)

    # stage 7: one table, O/E/H rows for both scorings, and DET plots
    table = (exp / "results/results.md").read_text().splitlines()
    assert len(table) == 2 + 2 * len(LISTS)
    for label in ("Vox1-O (cleaned)", "Vox1-E (cleaned)", "Vox1-H (cleaned)"):
        assert sum(label in row for row in table) == 2
        assert label in done.stdout
    assert (exp / "results/det_cosine.png").stat().st_size > 0
    assert (exp / "results/det_asnorm.png").stat().st_size > 0

    # stage 8: calibrated final checkpoint (fitted on Vox1-O cleaned cosine scores) and ONNX
    final = load_checkpoint(exp / "final_model.pt")
    assert final.calibration is not None and final.calibration["scoring"] == "cosine"
    assert np.isfinite(final.calibration["slope"])
    assert (exp / "calibration.json").is_file() and (exp / "final_model.onnx").stat().st_size > 0
    assert not (exp / "final_model.tmp.onnx").exists()

    # re-running finished stages does no work
    again = run_recipe("--stage", "2", "--stop_stage", "6", "--data", str(corpus), "--exp", str(exp),
                       "--nj", "2", "--config", "resnet34_tstp", *TRAIN, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "conversion done before" in again.stdout and "lists written before" in again.stdout
    assert "trained before" in again.stdout and "kept" in again.stdout
    assert again.stdout.count("done before") == 1 + 2 + 2 * len(LISTS)


@pytest.mark.parametrize("args, message", [
    (("--stage", "9"), "stages 1-8 (got 9, 8)"),
    (("--stage", "x"), "stages 1-8 (got x, 8)"),
    (("--stage", "5", "--stop_stage", "3"), "--stage 5 is after --stop_stage 3: nothing would run"),
])
def test_impossible_stage_ranges_are_refused(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    done = run_recipe(*args, "--data", str(tmp_path / "data"), "--exp", str(tmp_path / "exp"), timeout=60)
    assert done.returncode == 1 and message in done.stderr
    assert not (tmp_path / "exp").exists()  # refused before anything was made


def test_stage_1_explains_what_is_missing(tmp_path: Path) -> None:
    empty_mirror = tmp_path / "mirror"
    empty_mirror.mkdir()
    done = run_recipe("--stage", "1", "--stop_stage", "1", "--data", str(tmp_path / "data"),
                      "--exp", str(tmp_path / "exp"), "--mirror", str(empty_mirror), timeout=300)
    assert done.returncode == 1
    err = done.stderr
    assert "missing" in err
    for folder, archive in (("voxceleb1/test/wav", "vox1_test_wav.zip"), ("voxceleb1/dev/wav", "vox1_dev_wav"),
                            ("voxceleb2/dev/aac", "vox2_dev_aac")):
        assert str(tmp_path / "data" / folder) in err and archive in err
    assert "4874" in err and "1092009" in err
    assert "trial list veri_test2.txt: download failed" in err
    assert "robots.ox.ac.uk" in err


@needs_ffmpeg
def test_stage_1_downloads_from_a_file_mirror(corpus: Path, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in ("veri_test.txt", "veri_test2.txt", "list_test_all.txt", "list_test_all2.txt",
                 "list_test_hard.txt", "list_test_hard2.txt"):
        (mirror / name).write_text(f"1 id10270/a/00001.wav id10270/b/00001.wav\n# {name}\n")
    wave = io.BytesIO()
    sf.write(wave, tone(0.5), 16000, format="WAV")
    with tarfile.open(mirror / "musan.tar.gz", "w:gz") as tar:
        for kind in ("noise", "music", "speech"):
            info = tarfile.TarInfo(f"musan/{kind}/x/{kind}-0001.wav")
            info.size = len(wave.getvalue())
            tar.addfile(info, io.BytesIO(wave.getvalue()))
    with zipfile.ZipFile(mirror / "rirs_noises.zip", "w") as archive:
        archive.writestr("RIRS_NOISES/simulated_rirs/smallroom/Room001-00001.wav", wave.getvalue())
    data = tmp_path / "data"
    for part in ("voxceleb1", "voxceleb2"):
        shutil.copytree(corpus / part, data / part, symlinks=True)
    args = ["--stage", "1", "--stop_stage", "1", "--data", str(data), "--exp", str(tmp_path / "exp"),
            "--config", "conf/resnet34_ghostvlad.yaml", "--mirror", str(mirror), "--checksums", "false"]
    strict = run_recipe(*args, timeout=300)
    assert strict.returncode == 1 and "the full set has 40 and 4874" in strict.stderr
    assert "--allow_partial true" in strict.stderr

    done = run_recipe(*args, "--allow_partial", "true", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("veri_test2.txt", "list_test_hard.txt"):
        assert (data / "trials" / name).read_text() == (mirror / name).read_text()
    assert (data / "musan/noise/x/noise-0001.wav").is_file()
    assert (data / "RIRS_NOISES/simulated_rirs/smallroom/Room001-00001.wav").is_file()
    again = run_recipe(*args, "--allow_partial", "true", timeout=300)
    assert again.returncode == 0 and "MUSAN: present" in again.stdout and "checked before" in again.stdout


def test_download_resumes_and_checks_md5(tmp_path: Path) -> None:
    source = tmp_path / "file.bin"
    payload = os.urandom(50_000)
    source.write_bytes(payload)
    md5 = hashlib.md5(payload).hexdigest()
    dest = tmp_path / "out" / "file.bin"
    dest.parent.mkdir()
    Path(f"{dest}.part").write_bytes(payload[:20_000])  # an interrupted earlier transfer
    script = str(RECIPE / "local/download.sh")
    ok = subprocess.run(["bash", script, str(dest), md5, "file:///nonexistent/file.bin", f"file://{source}"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert dest.read_bytes() == payload and not Path(f"{dest}.part").exists()
    bad_dest = tmp_path / "out" / "bad.bin"
    bad = subprocess.run(["bash", script, str(bad_dest), "0" * 32, f"file://{source}"], capture_output=True, text=True)
    assert bad.returncode == 1 and "MD5" in bad.stderr and not bad_dest.exists()


def test_recipe_configs_are_the_package_configs() -> None:
    for path in sorted((RECIPE / "conf").glob("*.yaml")):
        recipe, package = to_dict(load_config(path)), to_dict(load_config(path.stem))
        for cfg in (recipe, package):
            cfg["augment"].pop("musan_dir"), cfg["augment"].pop("rir_dir")
        assert recipe == package, path.name
        raw = yaml.safe_load(path.read_text())
        if raw.get("augment", {}).get("noise_prob", 0) > 0:
            assert raw["augment"]["musan_dir"] == "data/musan"
