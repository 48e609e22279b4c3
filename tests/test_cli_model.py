import json
import subprocess
import sys

import numpy as np

from speakervlad.cli.main import main
from speakervlad.embedding.directory import load_embeddings
from speakervlad.embedding.torch_embedder import load_model


def test_model_info_json(capsys):
    assert main(["model", "info", "thin_resnet34_ghostvlad", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert abs(info["parameters_without_head"] - 7.66e6) < 0.01 * 7.66e6
    assert info["embedding_dim"] == 512 and info["gflops_per_second_of_audio"] > 1
    assert set(info["parameters"]) == {"frontend", "trunk", "pooling", "embedding", "head"}


def test_init_info_embed(tmp_path, capsys, tiny_checkpoint, wav_dir):
    assert main(["model", "info", str(tiny_checkpoint)]) == 0
    assert "embedding: 16-d" in capsys.readouterr().out
    files = sorted(str(p) for p in wav_dir.glob("*.wav"))
    out = tmp_path / "emb"
    assert main(["embed", "--model", str(tiny_checkpoint), *files, "-o", str(out), "--audio-root", str(wav_dir)]) == 0
    emb = load_embeddings(out)
    assert emb.keys == ["utt0.wav", "utt1.wav", "utt2.wav"] and emb.matrix.shape == (3, 16)
    model = load_model(tiny_checkpoint)
    np.testing.assert_allclose(emb.get(["utt1.wav"])[0], model.embed(files[1]), atol=1e-5)
    assert emb.meta["model"] == model.fingerprint
    capsys.readouterr()
    assert main(["embed", "--model", str(tiny_checkpoint), files[0]]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(files[0]) and len(line.split("[")[1].split()) == 17  # 16 values + "]"


def test_embed_bad_audio_is_one_line_and_exit_2(tmp_path, tiny_checkpoint, wav_dir):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEfmt garbage")
    done = subprocess.run(
        [sys.executable, "-m", "speakervlad.cli.main", "embed", "--model", str(tiny_checkpoint), str(bad)],
        capture_output=True, text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and str(bad) in done.stderr and "error" in done.stderr
    good = str(next(wav_dir.glob("*.wav")))
    out = str(tmp_path / "e")
    assert main(["embed", "--model", str(tiny_checkpoint), str(bad), good, "--skip-bad", "-o", out]) == 0
    assert load_embeddings(tmp_path / "e").keys == [good]
