"""Typed, frozen configuration with strict YAML loading.

A config is a tree of frozen dataclasses. Loading rejects unknown keys with the
nearest valid name, and values of the wrong type. Named configs ship with the
package (``speakervlad/configs/*.yaml``); ``load_config`` takes a name or a path.

>>> cfg = load_config("thin_resnet34_ghostvlad")
>>> cfg.model.pooling.name
'ghostvlad'
>>> apply_overrides(cfg, ["model.embedding_dim=256"]).model.embedding_dim
256
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass(frozen=True)
class FrontendConfig:
    name: str = "spectrogram"  # spectrogram | fbank
    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int = 400  # 25 ms
    hop_length: int = 160  # 10 ms
    n_mels: int = 80  # fbank only
    # spectrogram: "frame" (reference: per frame across frequency), "bin", "none"
    # fbank: "mean" (utterance mean subtraction), "none"
    normalize: str = "frame"
    # spectrogram: "none" (reference: linear |STFT|) or "log" (log |STFT|, before normalisation)
    compression: str = "none"


@dataclass(frozen=True)
class PoolingConfig:
    name: str = "ghostvlad"  # ghostvlad | netvlad | tap | tstp | asp
    clusters: int = 8  # VLAD clusters K
    ghost_clusters: int = 2  # ghost clusters G (ghostvlad); netvlad needs 0
    feature_dim: int = 512  # VLAD: frame feature size after a 1x1 projection; 0 = no projection
    attention_dim: int = 128  # asp: hidden size of the attention


@dataclass(frozen=True)
class ModelConfig:
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    trunk: str = "thin_resnet34"  # thin_resnet34 | resnet34
    trunk_width: int = 32  # resnet34 base width (32 -> 32/64/128/256)
    pooling: PoolingConfig = field(default_factory=PoolingConfig)
    embedding_dim: int = 512
    embedding_activation: str = "relu"  # relu | none
    # after the embedding layer: "batchnorm" (BatchNorm1d; without it margin-softmax training
    # stays near chance for the first hundred steps) or "none" (checkpoint format 1's layout)
    embedding_norm: str = "batchnorm"


@dataclass(frozen=True)
class HeadConfig:
    name: str = "am_softmax"  # softmax | am_softmax | aam_softmax
    margin: float = 0.35
    scale: float = 30.0
    # margin ramp (aam/am): margin grows linearly from 0 to `margin` over these epochs
    margin_ramp_start_epoch: int = 0
    margin_ramp_end_epoch: int = 0


@dataclass(frozen=True)
class DataConfig:
    crop_seconds: float = 2.5
    reverse_concat: bool = False  # reference trick: append the time-reversed signal
    speaker_balanced: bool = True
    utterances_per_speaker: int = 0  # per epoch when balanced; 0 = as many as the data has
    batch_size: int = 64
    num_workers: int = 2
    min_seconds: float = 0.5  # shorter files are reported and skipped


@dataclass(frozen=True)
class AugmentConfig:
    musan_dir: str = ""  # MUSAN-style folder with noise/ music/ speech/
    rir_dir: str = ""  # folder of room impulse responses; empty = simulated
    simulated_rooms: int = 50  # size of the simulated RIR bank (pyroomacoustics) when rir_dir is empty
    noise_prob: float = 0.0
    reverb_prob: float = 0.0
    speed_perturb: bool = False  # 0.9/1.1 copies as new speakers
    specaug_prob: float = 0.0
    specaug_freq_mask: int = 8
    specaug_time_mask: int = 10


@dataclass(frozen=True)
class OptimConfig:
    optimizer: str = "adam"  # adam | sgd
    lr: float = 0.001
    weight_decay: float = 1e-4
    momentum: float = 0.9  # sgd
    # adam "step": lr * 0.1 every `step_epochs`, restart at `restart_epoch` (reference)
    # sgd "exp": linear warm-up for `warmup_epochs`, then exponential decay to `final_lr`
    scheduler: str = "step"  # step | exp | constant
    step_epochs: int = 36
    restart_epoch: int = 0  # 0 = no warm restart
    warmup_epochs: int = 0
    final_lr: float = 5e-5
    grad_clip: float = 0.0  # 0 = off
    # the trunk's precision: fp32 | bf16 | fp16 (GPU) | auto (bf16 where native, else fp32)
    precision: str = "fp32"


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    seed: int = 0
    log_every: int = 20
    validate_every: int = 0  # epochs; 0 = never
    max_minutes: float = 0.0  # 0 = no wall-clock budget
    # with max_minutes: time the first steps and plan the epochs (at most `epochs`) that fit
    # in the budget, so the lr schedule completes within it (speakervlad/train/budget.py)
    fit_to_budget: bool = False
    keep_checkpoints: int = 10
    # start each residual block as the identity: the last BatchNorm of its residual branch gets
    # scale 0 (Goyal et al. 2017); an initialisation, so models and checkpoints are unchanged
    zero_init_residual: bool = False


@dataclass(frozen=True)
class ExperimentConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def named_configs() -> list[str]:
    """Names of the configs that ship with the package."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def load_config(name_or_path: str | Path) -> ExperimentConfig:
    """Load a named config (``thin_resnet34_ghostvlad``) or a YAML file."""
    path = Path(name_or_path)
    if not path.is_file():
        named = CONFIG_DIR / f"{name_or_path}.yaml"
        if not named.is_file():
            raise ConfigError(
                f"no config file or named config {str(name_or_path)!r}; "
                f"named configs: {', '.join(named_configs())}"
            )
        path = named
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    return from_dict(ExperimentConfig, raw, where=str(path))


def from_dict(cls: type, raw: Any, where: str = "config") -> Any:
    """Build dataclass ``cls`` from a nested dict, rejecting unknown keys."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in raw.items():
        if key not in fields:
            near = difflib.get_close_matches(str(key), fields, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ConfigError(
                f"{where}: unknown key {key!r} in {cls.__name__}{hint} "
                f"(valid: {', '.join(fields)})"
            )
        values[key] = _coerce(hints[key], value, f"{where}: {key}")
    return cls(**values)


def _coerce(kind: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(kind):
        return from_dict(kind, value, where)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is float and isinstance(value, str):
        try:  # YAML 1.1 reads "5e-5" (no dot) as a string
            return float(value)
        except ValueError:
            pass
    base = kind if isinstance(kind, type) else None
    if base is not None and (not isinstance(value, base) or (base is int and isinstance(value, bool))):
        raise ConfigError(f"{where}: expected {base.__name__}, got {value!r}")
    return value


def to_dict(cfg: Any) -> dict:
    """The config as plain nested dicts (for YAML and checkpoints)."""
    return dataclasses.asdict(cfg)


def dump_config(cfg: ExperimentConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


def apply_overrides(cfg: Any, overrides: list[str]) -> Any:
    """Apply ``section.key=value`` overrides (values parsed as YAML scalars)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value, e.g. optim.lr=0.01")
        dotted, text = item.split("=", 1)
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        cfg = _replace_path(cfg, dotted.split("."), value, dotted)
    return cfg


def _replace_path(node: Any, keys: list[str], value: Any, dotted: str) -> Any:
    head, rest = keys[0], keys[1:]
    current = to_dict(node)
    if rest:
        if head not in current or not isinstance(current[head], dict):
            # reuse from_dict's message for the unknown key
            from_dict(type(node), {head: {}}, where=f"override {dotted}")
        child = _replace_path(getattr(node, head), rest, value, dotted)
        return dataclasses.replace(node, **{head: child})
    checked = from_dict(type(node), {**current, head: value}, where=f"override {dotted}")
    return checked
