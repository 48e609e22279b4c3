"""Training throughput on this machine: samples/s and fraction of the fp32 matmul peak.

For each named config, a real training step (SpeakerNet + margin head,
cross-entropy, backward, the config's optimiser) on random crops of the
config's length. FLOPs are counted with ``torch.utils.flop_counter`` on the
forward pass (model + head) and tripled for forward + backward. The machine's
fp32 matrix-multiply peak is measured in the same run (large ``torch.matmul``,
best of several, before and after the models), so the fraction is a ratio of
two measurements under the same load::

    python benchmarks/train_speed.py --config thin_resnet34_ghostvlad resnet34_ghostvlad
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from speakervlad.config import apply_overrides, load_config
from speakervlad.models import build_head, build_model
from speakervlad.train.optimizers import build_optimizer


def matmul_peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    """Best GFLOP/s of a ``size`` x ``size`` fp32 matmul."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.matmul(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def train_step_speed(name: str, batch: int, steps: int, warmup: int, overrides: list[str],
                     num_classes: int) -> dict:
    cfg = apply_overrides(load_config(name), overrides)
    torch.manual_seed(0)
    model = build_model(cfg.model).train()
    head = build_head(cfg.head, model.embedding_dim, num_classes)
    optimizer = build_optimizer(cfg.optim, [*model.parameters(), *head.parameters()])
    samples = int(cfg.data.crop_seconds * model.sample_rate)
    waves = torch.randn(batch, samples) * 0.1  # (B, N)
    labels = torch.randint(0, num_classes, (batch,))  # (B,)

    counter = FlopCounterMode(display=False)
    with counter:
        head(model(waves), labels)
    train_flops = 3 * counter.get_total_flops()

    def step() -> None:
        loss = F.cross_entropy(head(model(waves), labels), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    return {
        "config": name,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "crop_s": cfg.data.crop_seconds,
        "gflop_step": train_flops / 1e9,
        "s_step": seconds,
        "samples_s": batch / seconds,
        "gflops": train_flops / seconds / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", nargs="+", default=["thin_resnet34_ghostvlad", "resnet34_ghostvlad"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--classes", type=int, default=1000, help="speakers in the head")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("overrides", nargs="*", help="config overrides for every model, e.g. model.trunk_width=16")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    peak_before = matmul_peak_gflops()
    rows = [train_step_speed(name, args.batch, args.steps, args.warmup, args.overrides, args.classes)
            for name in args.config]
    peak_after = matmul_peak_gflops()
    peak = (peak_before + peak_after) / 2

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"{args.classes} classes, overrides: {' '.join(args.overrides) or 'none'}")
    print(f"fp32 matmul peak: {peak_before:.1f} GFLOP/s before, {peak_after:.1f} after (mean {peak:.1f})")
    header = f"{'config':<26}{'params M':>9}{'crop s':>7}{'GFLOP/step':>11}{'s/step':>8}" \
             f"{'samples/s':>10}{'GFLOP/s':>9}{'of peak':>8}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['config']:<26}{r['params_m']:>9.2f}{r['crop_s']:>7.1f}{r['gflop_step']:>11.1f}"
              f"{r['s_step']:>8.2f}{r['samples_s']:>10.1f}{r['gflops']:>9.1f}{r['gflops'] / peak:>8.1%}")


if __name__ == "__main__":
    main()
