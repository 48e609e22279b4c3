"""The model on real speech from ../shared/data (skipped when it is absent)."""
import numpy as np
import pytest
import soundfile as sf

from speakervlad.cli.main import main
from speakervlad.embedding.directory import load_embeddings

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def reference_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "thin.pt"
    assert main(["model", "init", "thin_resnet34_ghostvlad", "-o", str(path)]) == 0
    return path


def test_embed_voxceleb_clips(tmp_path, reference_model, shared_data):
    root = shared_data / "voxceleb1-samples"
    files = sorted(str(p) for p in root.rglob("*.wav"))
    assert len(files) == 6
    out = tmp_path / "emb"
    assert main(["embed", "--model", str(reference_model), *files, "--audio-root", str(root), "-o", str(out)]) == 0
    emb = load_embeddings(out)
    assert emb.matrix.shape == (6, 512) and emb.keys[0].startswith("id1000")
    assert np.all(np.isfinite(emb.matrix)) and np.all(np.linalg.norm(emb.matrix, axis=1) > 0)


def test_embed_8khz_fsdd_resampled(tmp_path, reference_model, shared_data):
    files = sorted((shared_data / "fsdd" / "recordings").glob("*_jackson_1*.wav"))[:5]
    assert sf.info(str(files[0])).samplerate == 8000
    out = tmp_path / "emb"
    assert main(["embed", "--model", str(reference_model), *map(str, files), "-o", str(out), "--skip-bad"]) == 0
    emb = load_embeddings(out)
    assert 1 <= len(emb) <= 5 and emb.dim == 512
