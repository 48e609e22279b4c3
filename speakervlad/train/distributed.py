"""DistributedDataParallel glue for ``torchrun``.

``torchrun --nproc_per_node=N [--nnodes=M --rdzv-endpoint=HOST:PORT] -m speakervlad.train ...``
sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`init_distributed` reads
them and joins the process group (NCCL on GPUs, gloo on CPU). Without them
training runs in one process and every helper here is a no-op.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

logger = logging.getLogger(__name__)

#: why training stops early, weakest first ("" = keep going)
STOP_REASONS = ("", "max_steps", "budget", "signal")


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistEnv:
    """Join the torchrun process group if there is one; pick this process's device.

    ``device`` is ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
    """
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    name = f"cuda:{local_rank}" if use_cuda else "cpu"
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        dist.init_process_group(backend=backend)
        logger.info("rank %d/%d joined the %s process group", rank, world_size, backend)
    return DistEnv(rank=rank, world_size=world_size, local_rank=local_rank, device=name)


def wrap(module: nn.Module, env: DistEnv) -> nn.Module:
    """``module`` wrapped in DistributedDataParallel when distributed, else itself."""
    if not env.distributed:
        return module
    device_ids = [env.local_rank] if env.device.startswith("cuda") else None
    return DistributedDataParallel(module, device_ids=device_ids)


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def all_reduce_sum(values: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Sum ``values`` over all processes (returned; the input is not changed)."""
    return _all_reduce(values, env, dist.ReduceOp.SUM)


def all_reduce_max(values: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Element-wise maximum of ``values`` over all processes (returned; the input is not changed)."""
    return _all_reduce(values, env, dist.ReduceOp.MAX)


def _all_reduce(values: torch.Tensor, env: DistEnv, op: dist.ReduceOp) -> torch.Tensor:
    if not env.distributed:
        return values
    reduced = values.detach().clone().to(_comm_device(env))
    dist.all_reduce(reduced, op=op)
    return reduced.to(values.device)


def any_process_reason(reason: str, env: DistEnv, reasons: tuple[str, ...] = STOP_REASONS) -> str:
    """The strongest of the processes' stop reasons (``''`` when none wants to stop).

    Every process gets the same answer, so all stop at the same step.
    """
    if not env.distributed:
        return reason
    value = torch.tensor([float(reasons.index(reason))], device=_comm_device(env))
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return reasons[int(value.item())]


def sync_buffers(module: nn.Module, env: DistEnv) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every process.

    DDP broadcasts buffers at the start of each forward, so after the last step
    of an epoch each rank holds its own statistics; this makes them identical.
    """
    if not env.distributed:
        return
    for buffer in module.buffers():
        dist.broadcast(buffer.data, src=0)


def cleanup(env: DistEnv) -> None:
    if env.distributed and dist.is_initialized():
        dist.destroy_process_group()


def _comm_device(env: DistEnv) -> str:
    return env.device if env.device.startswith("cuda") else "cpu"
