"""ONNX and TorchScript exports equal PyTorch, on any length; OnnxEmbedder; the CLI."""
import io
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import speech, tone, write_wav

from speakervlad.cli.main import main
from speakervlad.config import load_config
from speakervlad.embedding import Embedder, open_embedder
from speakervlad.embedding.directory import load_embeddings
from speakervlad.embedding.export import _StridedMaxPool, export_onnx, load_torchscript
from speakervlad.embedding.onnx_embedder import OnnxEmbedder
from speakervlad.embedding.torch_embedder import load_model, pad_batch
from speakervlad.errors import AudioError, ConfigError
from speakervlad.models import build_model

# odd and even frame counts, a padded row, and the shortest input the model takes
LENGTHS = [(24_160,), (16_000, 9_920), (41_123, 41_123, 30_000)]


pytestmark = pytest.mark.usefixtures("one_thread")


def _batches(net):
    for lengths in LENGTHS + [(net.min_samples,)]:
        waves = [tone(n / 16000, freq=120 + 30 * i, seed=i)[:n] for i, n in enumerate(lengths)]
        yield pad_batch(waves)


@pytest.fixture(scope="module")
def tiny_exports(tiny_checkpoint, tmp_path_factory):
    folder = tmp_path_factory.mktemp("exports")
    for fmt, name in (("onnx", "tiny.onnx"), ("torchscript", "tiny.ts")):
        assert main(["export", "--model", str(tiny_checkpoint), "--format", fmt, "-o", str(folder / name)]) == 0
    return folder / "tiny.onnx", folder / "tiny.ts"


def test_onnx_equals_pytorch_with_dynamic_batch_and_time(tiny_checkpoint, tiny_exports):
    net = load_model(tiny_checkpoint).net
    embedder = OnnxEmbedder(tiny_exports[0])
    for batch, lengths in _batches(net):
        with torch.no_grad():
            expected = net(batch, lengths).numpy()
        np.testing.assert_allclose(embedder.run(batch.numpy(), lengths.numpy()), expected, atol=1e-4)


def test_torchscript_equals_pytorch(tiny_checkpoint, tiny_exports):
    net = load_model(tiny_checkpoint).net
    scripted = load_torchscript(tiny_exports[1])
    for batch, lengths in list(_batches(net))[1:3]:  # a padded batch, then another length
        with torch.no_grad():
            np.testing.assert_allclose(scripted(batch, lengths).numpy(), net(batch, lengths).numpy(), atol=1e-4)


def test_onnx_embedder_matches_embedding_model_on_files(tiny_checkpoint, tiny_exports, wav_dir):
    model, embedder = load_model(tiny_checkpoint), OnnxEmbedder(tiny_exports[0], threads=1)
    assert embedder.embedding_dim == model.embedding_dim and embedder.fingerprint == model.fingerprint
    assert embedder.min_seconds == pytest.approx(model.min_seconds) and embedder.calibration is None
    paths = sorted(wav_dir.glob("*.wav"))
    np.testing.assert_allclose(embedder.embed_many(paths, batch_size=2), model.embed_many(paths), atol=1e-4)
    np.testing.assert_allclose(embedder.embed(paths[0]), model.embed(paths[0]), atol=1e-4)
    embedder.max_seconds = 1.0
    with pytest.raises(AudioError, match="longer than max_seconds"):
        embedder.embed(paths[0])


def test_onnx_embedder_never_imports_torch(tiny_checkpoint, tiny_exports, wav_dir, tmp_path):
    """A deployment with onnxruntime only: `import speakervlad`, the embedder and its VAD leave torch unloaded."""
    path = sorted(wav_dir.glob("*.wav"))[0]
    padded = write_wav(tmp_path / "padded.wav", np.concatenate([np.zeros(16000, np.float32), speech(3.0)]))
    script = (
        "import sys, numpy as np, speakervlad\n"
        "from speakervlad.embedding.onnx_embedder import OnnxEmbedder\n"
        f"embedder = OnnxEmbedder({str(tiny_exports[0])!r}, threads=1)\n"
        f"np.save(sys.stdout.buffer, np.stack([embedder.embed({str(path)!r}), "
        f"embedder.embed({str(padded)!r}, vad=True)]))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    embeddings = np.load(io.BytesIO(done.stdout))
    model = load_model(tiny_checkpoint)
    np.testing.assert_allclose(embeddings[0], model.embed(path), atol=1e-4)
    np.testing.assert_allclose(embeddings[1], model.embed(padded, vad=True), atol=1e-4)


def test_both_embedders_keep_the_embedder_protocol(tiny_checkpoint, tiny_exports):
    for embedder in (open_embedder(tiny_checkpoint), open_embedder(tiny_exports[0])):
        assert isinstance(embedder, Embedder)
    assert isinstance(open_embedder(tiny_exports[0]), OnnxEmbedder)


def test_eval_from_the_onnx_export_scores_as_the_checkpoint_without_torch(tiny_checkpoint, tiny_exports, wav_dir,
                                                                          tmp_path):
    keys = sorted(p.name for p in wav_dir.glob("*.wav"))
    (tmp_path / "trials.txt").write_text(f"1 {keys[0]} {keys[1]}\n0 {keys[0]} {keys[2]}\n")
    scores = {}
    for name, model in (("pt", tiny_checkpoint), ("onnx", tiny_exports[0])):
        script = (
            "import sys\nfrom speakervlad.cli.main import main\n"
            f"code = main(['eval', '--model', {str(model)!r}, '--trials', {str(tmp_path / 'trials.txt')!r}, "
            f"'--audio-root', {str(wav_dir)!r}, '--cache', {str(tmp_path / name)!r}, "
            f"'--save-scores', {str(tmp_path / name)!r} + '_scores'])\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\nsys.exit(code)\n"
        )
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip().endswith("NO-TORCH" if name == "onnx" else "TORCH")
        lines = (tmp_path / f"{name}_scores" / "trials.scores.txt").read_text().split()
        scores[name] = np.array([float(x) for x in lines[2::3]])
    np.testing.assert_allclose(scores["onnx"], scores["pt"], atol=1e-4)


def test_extract_from_the_onnx_export_equals_the_checkpoint(tiny_checkpoint, tiny_exports, wav_dir, tmp_path):
    for name, model in (("pt", tiny_checkpoint), ("onnx", tiny_exports[0])):
        assert main(["extract", "--model", str(model), "--audio-root", str(wav_dir), "-o", str(tmp_path / name),
                     "--jobs", "1"]) == 0
    pt, onnx = (load_embeddings(tmp_path / name) for name in ("pt", "onnx"))
    assert onnx.keys == pt.keys and onnx.meta["model"] == pt.meta["model"]
    np.testing.assert_allclose(np.asarray(onnx.matrix), np.asarray(pt.matrix), atol=1e-4)
    with pytest.raises(ConfigError, match="ONNX export runs in fp32 on the CPU"):
        open_embedder(tiny_exports[0], precision="bf16")


def test_thin_resnet34_ghostvlad_onnx_equals_pytorch(tmp_path):
    torch.manual_seed(0)
    net = build_model(load_config("thin_resnet34_ghostvlad").model).eval()
    assert export_onnx(net, tmp_path / "thin.onnx") <= 1e-4  # checked on export at a third length
    embedder = OnnxEmbedder(tmp_path / "thin.onnx")
    for batch, lengths in list(_batches(net))[:2]:  # two lengths (odd and even frames) through one file
        with torch.no_grad():
            expected = net(batch, lengths).numpy()
        np.testing.assert_allclose(embedder.run(batch.numpy(), lengths.numpy()), expected, atol=1e-4)


def test_strided_max_pool_equals_max_pool2d():
    x = torch.randn(2, 3, 11, 17)
    for kernel in ((2, 2), (3, 2)):
        torch.testing.assert_close(_StridedMaxPool(kernel)(x), torch.nn.functional.max_pool2d(x, kernel, kernel))


def test_cli_export_errors(tiny_checkpoint, tmp_path, capsys):
    assert main(["export", "--model", str(tiny_checkpoint), "--opset", "13", "-o", str(tmp_path / "m.onnx")]) == 2
    assert "at least 17" in capsys.readouterr().err
    assert main(["export", "--model", str(tmp_path / "none.pt"), "-o", str(tmp_path / "m.onnx")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="not an ONNX model exported by speakervlad"):
        OnnxEmbedder(_plain_onnx(tmp_path / "plain.onnx"))


def _plain_onnx(path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path
