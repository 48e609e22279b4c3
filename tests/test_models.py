import math

import numpy as np
import pytest
import torch
from conftest import tone

from speakervlad.config import HeadConfig, ModelConfig, PoolingConfig, load_config
from speakervlad.embedding.torch_embedder import EmbeddingModel, pad_batch
from speakervlad.errors import ConfigError
from speakervlad.models import build_head, build_model, parameter_counts
from speakervlad.models.pooling import build_pooling
from speakervlad.models.resnet import ResNet34, ThinResNet34


def _randomise_norms(net):
    """Give BatchNorm layers non-trivial statistics so padding leaks would show."""
    gen = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
    return net.eval()


def test_thin_resnet34_map_is_7_by_t_over_16():
    trunk = ThinResNet34(257).eval()
    out, lengths = trunk(torch.randn(2, 257, 160), torch.tensor([160, 100]))
    assert out.shape == (2, 512 * 7, 10)
    assert lengths.tolist() == [10, 7]  # floor(100/2)=50 -> 25 -> 13 -> 7


def test_resnet34_map_and_width():
    trunk = ResNet34(80, width=32).eval()
    out, _ = trunk(torch.randn(1, 80, 64), torch.tensor([64]))
    assert out.shape == (1, 256 * 10, 8)
    assert ResNet34(80, width=16).out_dim == 128 * 10


@pytest.mark.parametrize("trunk, bins", [(ResNet34(40, width=4), 40), (ThinResNet34(64), 64)], ids=["resnet34", "thin"])
def test_zero_init_residual_starts_every_block_as_its_shortcut(trunk, bins):
    trunk.zero_init_residual_()  # train.zero_init_residual
    seen = []
    hooks = [block.register_forward_hook(lambda block, args, out: seen.append((block, args[0], out[0])))
             for block in trunk.blocks]
    with torch.no_grad():
        trunk.eval()(torch.randn(2, bins, 48), torch.tensor([48, 48]))
    for hook in hooks:
        hook.remove()
    for block, x, out in seen:
        torch.testing.assert_close(out, block.shortcut(x).relu())
    assert len(seen) == len(trunk.blocks) > 10


@pytest.mark.parametrize(
    "name, params",
    [("thin_resnet34_ghostvlad", 7.66e6), ("resnet34_tstp", 6.63e6)],
)
def test_parameter_counts_match_published(name, params):
    net = build_model(load_config(name).model)
    total = sum(parameter_counts(net).values())
    assert abs(total - params) / params < 0.01, total


@pytest.mark.parametrize("pooling", ["ghostvlad", "netvlad", "tap", "tstp", "asp"])
@pytest.mark.parametrize("trunk, frontend", [("resnet34", "fbank"), ("thin_resnet34", "spectrogram")])
def test_shapes_and_padding_invariance(pooling, trunk, frontend):
    normalize = "mean" if frontend == "fbank" else "frame"
    cfg = ModelConfig(
        trunk=trunk, trunk_width=8, embedding_dim=24,
        pooling=PoolingConfig(name=pooling, clusters=4, ghost_clusters=0 if pooling == "netvlad" else 2,
                              feature_dim=32, attention_dim=16),
    )
    cfg = ModelConfig(**{**cfg.__dict__, "frontend": type(cfg.frontend)(name=frontend, normalize=normalize)})
    torch.manual_seed(0)
    net = _randomise_norms(build_model(cfg))
    waves = [tone(0.9, seed=1), tone(0.37, seed=2)]
    batch, lengths = pad_batch(waves)
    with torch.no_grad():
        together = net(batch, lengths)
        alone = torch.cat([net(torch.from_numpy(w)[None]) for w in waves])
    assert together.shape == (2, 24)
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-4)


def test_ghostvlad_without_ghosts_equals_netvlad():
    torch.manual_seed(0)
    ghost = build_pooling(PoolingConfig(name="ghostvlad", clusters=4, ghost_clusters=0, feature_dim=16), 40)
    net = build_pooling(PoolingConfig(name="netvlad", clusters=4, ghost_clusters=0, feature_dim=16), 40)
    net.load_state_dict(ghost.state_dict())
    x, lengths = torch.randn(3, 40, 25), torch.tensor([25, 20, 7])
    torch.testing.assert_close(ghost(x, lengths), net(x, lengths))
    assert net.out_dim == 64


def test_ghost_share_is_the_ghosts_part_of_the_assignment_mass():
    torch.manual_seed(0)
    pooling = build_pooling(PoolingConfig(name="ghostvlad", clusters=4, ghost_clusters=2, feature_dim=16), 40)
    x, lengths = torch.randn(3, 40, 25) * 3, torch.tensor([25, 20, 7])
    with torch.no_grad():
        share = pooling.ghost_share(pooling.stats(x, lengths))  # (3,)
        frames = pooling.assignments(x, lengths)  # (3, 6, 25)
        logits = torch.einsum("kd,bdt->bkt", pooling.assign.weight[..., 0], x) + pooling.assign.bias[:, None]
    for b, n in enumerate(lengths.tolist()):  # by hand: softmax over the K+G scores, mean over the valid frames
        column = logits[b, :, :n].softmax(0)
        assert float(share[b]) == pytest.approx(float(column[4:].sum(0).mean()), abs=1e-5)
        torch.testing.assert_close(frames[b, :, :n], column)
        assert not frames[b, :, n:].any()
    assert ((share >= 0) & (share <= 1)).all()
    halves = pooling.merge(pooling.stats(x[..., :10], lengths.clamp(max=10)),
                           pooling.stats(x[..., 10:], (lengths - 10).clamp(min=0)))
    torch.testing.assert_close(pooling.ghost_share(halves), share)  # chunks merge to the same share
    netvlad = build_pooling(PoolingConfig(name="netvlad", clusters=4, ghost_clusters=0, feature_dim=16), 40)
    assert netvlad.ghost_share(netvlad.stats(x, lengths)).tolist() == [0.0, 0.0, 0.0]
    for name in ("tap", "tstp", "asp"):
        other = build_pooling(PoolingConfig(name=name, attention_dim=8), 40)
        assert other.ghost_share(other.stats(x, lengths)) is None


def test_netvlad_with_ghost_clusters_is_a_config_error():
    with pytest.raises(ConfigError, match="ghost_clusters=3 means nothing for netvlad.*ghost_clusters=0"):
        build_pooling(PoolingConfig(name="netvlad", clusters=4, ghost_clusters=3), 40)


def test_vlad_without_projection_aggregates_the_trunk_frames():
    pooling = build_pooling(PoolingConfig(name="ghostvlad", clusters=4, ghost_clusters=1, feature_dim=0), 40)
    assert pooling.features is None and pooling.out_dim == 4 * 40 and pooling.centers.shape == (5, 40)
    x, lengths = torch.randn(2, 40, 30), torch.tensor([30, 12])
    weights = pooling.assign(x[1:, :, :12]).softmax(dim=1)[0]  # (K+G, T) of the second item, unpadded
    residual = weights @ x[1, :, :12].T - weights.sum(-1)[:, None] * pooling.centers  # (K+G, D)
    expected = torch.nn.functional.normalize(residual[:4], dim=-1).flatten()
    torch.testing.assert_close(pooling(x, lengths)[1], expected, atol=1e-5, rtol=1e-5)


def test_ghostvlad_matches_direct_formula():
    torch.manual_seed(0)
    pool = build_pooling(PoolingConfig(name="ghostvlad", clusters=3, ghost_clusters=2, feature_dim=8), 12)
    x = torch.randn(1, 12, 9)
    with torch.no_grad():
        out = pool(x, torch.tensor([9]))
        feats = pool.features(x).relu()[0].T  # (T, D)
        assign = pool.assign(x)[0].T.softmax(-1)  # (T, K+G)
        vlad = torch.stack([(assign[:, k : k + 1] * (feats - pool.centers[k])).sum(0) for k in range(5)])
        expected = torch.nn.functional.normalize(vlad[:3], dim=-1).flatten()
    torch.testing.assert_close(out[0], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pooling", ["ghostvlad", "tstp", "asp"])
def test_long_recordings_in_chunks_equal_whole(pooling):
    cfg = ModelConfig(
        trunk="resnet34", trunk_width=4, embedding_dim=16,
        pooling=PoolingConfig(name=pooling, clusters=4, ghost_clusters=1, feature_dim=16, attention_dim=8),
    )
    cfg = ModelConfig(**{**cfg.__dict__, "frontend": type(cfg.frontend)(name="fbank", normalize="mean")})
    torch.manual_seed(1)
    net = _randomise_norms(build_model(cfg))
    wave = np.concatenate([tone(3.0, seed=s, freq=100 + 40 * s) for s in range(4)])
    model = EmbeddingModel(net, chunk_seconds=2.0, context_seconds=1.5)
    with torch.no_grad():
        whole = net(torch.from_numpy(wave)[None])[0].numpy()
    np.testing.assert_allclose(model.embed_waveform(wave), whole, atol=1e-4, rtol=1e-4)


def test_unknown_pooling_lists_names():
    with pytest.raises(ConfigError, match="ghostvlad.*netvlad|asp.*ghostvlad"):
        build_pooling(PoolingConfig(name="ghostvlda"), 8)


def test_margin_heads():
    emb, labels = torch.randn(4, 8), torch.tensor([0, 1, 2, 1])
    am = build_head(HeadConfig(name="am_softmax", margin=0.35, scale=30.0), 8, 3)
    cos = am.cosine(emb)
    logits = am(emb, labels)
    target = logits.gather(1, labels[:, None])[:, 0]
    torch.testing.assert_close(target, 30 * (cos.gather(1, labels[:, None])[:, 0] - 0.35))
    aam = build_head(HeadConfig(name="aam_softmax", margin=0.2, scale=32.0), 8, 3)
    theta = aam.cosine(emb).gather(1, labels[:, None])[:, 0].clamp(-1, 1).acos()
    expected = torch.where(theta + 0.2 < math.pi, 32 * torch.cos(theta + 0.2), logits.new_zeros(4))
    got = aam(emb, labels).gather(1, labels[:, None])[:, 0]
    ok = theta + 0.2 < math.pi
    torch.testing.assert_close(got[ok], expected[ok], atol=1e-4, rtol=1e-4)
    aam.margin = 0.0  # a ramp sets it: no margin means plain scaled cosine
    torch.testing.assert_close(aam(emb, labels), 32 * aam.cosine(emb), atol=1e-5, rtol=1e-5)
    soft = build_head(HeadConfig(name="softmax"), 8, 3)
    assert soft(emb, labels).shape == (4, 3)


def test_bf16_trunk_keeps_features_pooling_and_embedding_in_fp32():
    """trunk_dtype runs only the trunk under autocast: the result is fp32 and close to the fp32 network's,
    and gradients reach every parameter."""
    net = _randomise_norms(build_model(load_config("resnet34_ghostvlad").model))
    waves = torch.from_numpy(np.stack([tone(2.0, freq=150.0, seed=0), tone(2.0, freq=210.0, seed=1)]))
    seen = []
    net.pooling.register_forward_pre_hook(lambda module, args: seen.append(args[0].dtype))
    with torch.no_grad():
        exact = net(waves)
        low = net(waves, trunk_dtype=torch.bfloat16)
    assert low.dtype == torch.float32 and seen == [torch.float32] * 2
    cosine = torch.nn.functional.cosine_similarity(exact, low)
    assert cosine.min() > 0.99, cosine
    assert not torch.equal(exact, low)  # the trunk did compute in bf16
    net.train()
    net(waves, trunk_dtype=torch.bfloat16).pow(2).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
