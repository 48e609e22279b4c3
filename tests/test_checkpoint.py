import pytest
import torch
from conftest import TINY

from speakervlad.checkpoint import load_checkpoint, model_fingerprint, save_checkpoint, set_calibration
from speakervlad.config import apply_overrides, load_config
from speakervlad.errors import CheckpointError
from speakervlad.models import build_head, build_model


def _tiny(*extra):
    overrides = [*TINY, "model.pooling.name=ghostvlad", "model.pooling.feature_dim=8", *extra]
    return apply_overrides(load_config("resnet34_ghostvlad"), overrides)


def test_round_trip_is_bit_exact(tmp_path):
    cfg = _tiny()
    torch.manual_seed(3)
    net, head = build_model(cfg.model), build_head(cfg.head, 16, 5)
    path = save_checkpoint(tmp_path / "m.pt", net, cfg, head=head, provenance={"training_data": "x"},
                           calibration={"a": 1.0})
    ckpt = load_checkpoint(path)
    assert ckpt.config == cfg and ckpt.calibration == {"a": 1.0}
    assert ckpt.provenance["training_data"] == "x"
    assert "created" in ckpt.provenance and "speakervlad_version" in ckpt.provenance
    for key, value in net.state_dict().items():
        assert torch.equal(ckpt.model_state[key], value)
    assert torch.equal(ckpt.head_state["weight"], head.weight.detach())
    loaded = ckpt.build_model()
    assert model_fingerprint(loaded) == model_fingerprint(net)
    assert not loaded.training
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left behind


def test_mismatched_clusters_named(tmp_path):
    trained = _tiny("model.pooling.clusters=10")
    path = save_checkpoint(tmp_path / "k10.pt", build_model(trained.model), trained)
    payload = torch.load(path, weights_only=True)
    payload["config"]["model"]["pooling"]["clusters"] = 8  # config says K=8, weights have K=10
    torch.save(payload, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path).build_model()
    message = str(err.value)
    assert "pooling" in message and "model.pooling" in message and "(12, 8)" in message and "(10, 8)" in message


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", None])
def test_unreadable_checkpoints(tmp_path, content):
    path = tmp_path / "bad.pt"
    if content is None:
        torch.save({"weights": torch.zeros(2)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path)


def test_truncated_checkpoint(tmp_path):
    cfg = _tiny()
    path = save_checkpoint(tmp_path / "m.pt", build_model(cfg.model), cfg)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)


def test_set_calibration_and_fingerprint(tmp_path):
    cfg = _tiny()
    net = build_model(cfg.model)
    path = save_checkpoint(tmp_path / "m.pt", net, cfg)
    out = set_calibration(path, {"slope": 2.0, "offset": -1.0}, tmp_path / "cal.pt")
    assert load_checkpoint(out).calibration == {"slope": 2.0, "offset": -1.0}
    assert load_checkpoint(path).calibration is None
    before = model_fingerprint(net)
    with torch.no_grad():
        net.embedding[0].bias.add_(1e-3)
    assert model_fingerprint(net) != before


def _as_format_1(path):
    """Rewrite a checkpoint as format 1 wrote it: no model.embedding_norm, no embedding BatchNorm."""
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 1
    del payload["config"]["model"]["embedding_norm"]
    payload["model"] = {k: v for k, v in payload["model"].items() if not k.startswith("embedding.1.")}
    torch.save(payload, path)


def test_format_1_checkpoints_load_without_embedding_norm(tmp_path):
    cfg = _tiny("model.embedding_norm=none")
    net = build_model(cfg.model)
    path = save_checkpoint(tmp_path / "old.pt", net, _tiny())  # weights of a model without the norm
    _as_format_1(path)
    ckpt = load_checkpoint(path)
    assert ckpt.config.model.embedding_norm == "none" and ckpt.format_version == 1
    loaded = ckpt.build_model()
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in loaded.embedding)
    wave = torch.randn(1, 16000)
    torch.testing.assert_close(loaded(wave), net.eval()(wave))


def test_fields_added_later_leave_old_models_fingerprints_unchanged():
    """A model whose config holds a later field at its old-behaviour value has the fingerprint its config
    had before the field existed, so stores and embedding caches made before an upgrade still match."""
    import hashlib
    import json

    from speakervlad.config import to_dict

    net = build_model(_tiny("model.embedding_norm=none").model)
    old_config = to_dict(net.config)
    del old_config["embedding_norm"], old_config["frontend"]["compression"]
    digest = hashlib.sha256(json.dumps(old_config, sort_keys=True).encode())
    for key, value in sorted(net.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.numpy().tobytes())
    assert model_fingerprint(net) == digest.hexdigest()[:16]
    assert model_fingerprint(build_model(_tiny().model)) != model_fingerprint(net)  # batchnorm counts


def test_embedding_norm_mismatch_is_named(tmp_path):
    cfg = _tiny()
    path = save_checkpoint(tmp_path / "m.pt", build_model(_tiny("model.embedding_norm=none").model), cfg)
    with pytest.raises(CheckpointError, match=r"embedding \(check model.embedding_dim.*embedding.1.running_mean: miss"):
        load_checkpoint(path).build_model()


def test_newer_format_is_refused_with_advice(tmp_path):
    cfg = _tiny()
    path = save_checkpoint(tmp_path / "m.pt", build_model(cfg.model), cfg)
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="format 99 is not supported.*upgrade speakervlad"):
        load_checkpoint(path)
