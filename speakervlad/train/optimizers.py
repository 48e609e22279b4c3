"""Optimisers and training precisions, chosen by name (``optim.optimizer``, ``optim.precision``).

The precision applies to the trunk (the bulk of the compute); features,
pooling, embedding and head stay in fp32. ``auto`` takes bf16 where the
hardware computes it natively (CPUs with AVX512-BF16 or AMX, GPUs with bf16)
and fp32 elsewhere: on a CPU without it, bf16 is emulated and slower than fp32.

>>> OPTIMIZERS.names(), PRECISIONS.names()
(['adam', 'sgd'], ['auto', 'bf16', 'fp16', 'fp32'])
>>> autocast_dtype("bf16", torch.device("cpu"))
torch.bfloat16
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ..config import OptimConfig
from ..errors import ConfigError
from ..registry import Registry

OPTIMIZERS: Registry[torch.optim.Optimizer] = Registry("optim.optimizer")
PRECISIONS: Registry[torch.dtype | None] = Registry("optim.precision")


@OPTIMIZERS.register("adam")
def _adam(optim: OptimConfig, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=optim.lr, weight_decay=optim.weight_decay)


@OPTIMIZERS.register("sgd")
def _sgd(optim: OptimConfig, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay)


@PRECISIONS.register("fp32")
def _fp32(device: torch.device) -> None:
    return None


@PRECISIONS.register("bf16")
def _bf16(device: torch.device) -> torch.dtype:
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("this GPU does not support bf16; use optim.precision=fp16 or fp32")
    return torch.bfloat16


@PRECISIONS.register("fp16")
def _fp16(device: torch.device) -> torch.dtype:
    if device.type != "cuda":
        raise ConfigError("fp16 autocast needs a GPU; on CPU use optim.precision=bf16 or fp32")
    return torch.float16


@PRECISIONS.register("auto")
def _auto(device: torch.device) -> torch.dtype | None:
    return torch.bfloat16 if native_bf16(device) else None


def native_bf16(device: torch.device) -> bool:
    """True when ``device`` computes bf16 in hardware (AVX512-BF16 or AMX on CPU; bf16 GPUs)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type != "cpu":
        return False
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, hence looked up with care
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def build_optimizer(optim: OptimConfig, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    """The optimiser named by ``optim.optimizer`` over ``params``."""
    return OPTIMIZERS.get(optim.optimizer)(optim, params)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None: fp32); errors say what works."""
    return PRECISIONS.get(precision)(device)
