"""The fast inference paths keep the exactness properties: folded BatchNorm, in-place steps, bf16."""
import numpy as np
import pytest
import torch
from conftest import tone

from speakervlad.config import FrontendConfig, ModelConfig, PoolingConfig
from speakervlad.embedding.torch_embedder import EmbeddingModel, inference_copy, pad_batch
from speakervlad.errors import ConfigError
from speakervlad.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


def _net(trunk: str, frontend: str) -> torch.nn.Module:
    cfg = ModelConfig(
        frontend=FrontendConfig(name=frontend, normalize="mean" if frontend == "fbank" else "frame"),
        trunk=trunk, trunk_width=8, embedding_dim=24,
        pooling=PoolingConfig(name="ghostvlad", clusters=4, ghost_clusters=2, feature_dim=32),
    )
    torch.manual_seed(0)
    net = build_model(cfg)
    gen = torch.Generator().manual_seed(1)
    for m in net.modules():  # non-trivial BatchNorm statistics, so a wrong fold or padding leak shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return net.eval()


@pytest.mark.parametrize("trunk, frontend", [("resnet34", "fbank"), ("thin_resnet34", "spectrogram")])
def test_inference_copy_equals_network_on_padded_batches(trunk, frontend):
    net = _net(trunk, frontend)
    fast = inference_copy(net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())  # the original is untouched
    batch, lengths = pad_batch([tone(1.3, seed=1), tone(0.7, freq=300, seed=2), tone(1.0, seed=3)])
    with torch.inference_mode():
        expected = net(batch, lengths)
        together = fast(batch, lengths)
        alone = torch.cat([fast(batch[i : i + 1, : int(n)]) for i, n in enumerate(lengths)])
    torch.testing.assert_close(together, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(alone, expected, atol=1e-5, rtol=1e-4)


def test_bf16_precision_is_close_and_chunking_still_exact():
    net = _net("resnet34", "fbank")
    waves = [tone(2.5, seed=4), tone(1.1, freq=180, seed=5)]
    fp32 = EmbeddingModel(net).embed_waveforms(waves)
    bf16 = EmbeddingModel(net, precision="bf16").embed_waveforms(waves)
    assert bf16.dtype == np.float32
    cosine = (fp32 * bf16).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(bf16, axis=1)
    assert cosine.min() > 0.99
    long = np.concatenate([tone(2.0, seed=s, freq=120 + 50 * s) for s in range(3)])
    chunked = EmbeddingModel(net, chunk_seconds=2.0, context_seconds=1.5)
    np.testing.assert_allclose(chunked.embed_waveform(long), EmbeddingModel(net).embed_waveforms([long])[0], atol=1e-4)
    assert chunked.whole_seconds == pytest.approx(2.0 + 2 * 1.52)  # context rounded up to whole trunk frames


def test_unknown_precision_is_a_config_error():
    with pytest.raises(ConfigError, match="fp32, bf16"):
        EmbeddingModel(_net("resnet34", "fbank"), precision="fp16")
