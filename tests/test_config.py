import pytest

from speakervlad.config import apply_overrides, dump_config, load_config, named_configs
from speakervlad.errors import ConfigError


def test_named_configs_load():
    assert named_configs() == ["resnet34_ghostvlad", "resnet34_tstp", "thin_resnet34_ghostvlad"]
    ref = load_config("thin_resnet34_ghostvlad")
    assert ref.model.frontend.name == "spectrogram"
    assert (ref.model.pooling.clusters, ref.model.pooling.ghost_clusters) == (8, 2)
    assert ref.head.name == "softmax"  # the authors' released 3.22 % model (--loss softmax)
    assert ref.data.crop_seconds == 2.5
    for name in named_configs():  # every shipped config learns per step at least as fast as the loop (README)
        assert load_config(name).train.zero_init_residual, name


def test_unknown_key_names_nearest(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  pooling: {name: ghostvlad, clustres: 8}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'clustres'.*did you mean 'clusters'"):
        load_config(path)


def test_wrong_type_is_an_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  embedding_dim: big\n")
    with pytest.raises(ConfigError, match="embedding_dim: expected int"):
        load_config(path)


def test_unknown_named_config_lists_names():
    with pytest.raises(ConfigError, match="thin_resnet34_ghostvlad"):
        load_config("thin_resnet")


def test_overrides_and_round_trip(tmp_path):
    cfg = apply_overrides(load_config("resnet34_tstp"), ["model.embedding_dim=128", "optim.lr=0.05"])
    assert cfg.model.embedding_dim == 128 and cfg.optim.lr == 0.05
    assert apply_overrides(cfg, ["optim.final_lr=5e-5"]).optim.final_lr == 5e-5
    dump_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg
    with pytest.raises(ConfigError, match="did you mean 'embedding_dim'"):
        apply_overrides(cfg, ["model.embeding_dim=3"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(cfg, ["model.embedding_dim"])
