"""`speakervlad model info|init`: describe a model, or write an untrained checkpoint."""
from __future__ import annotations

import argparse
import json

import torch

from ..checkpoint import save_checkpoint
from ..config import apply_overrides, load_config, named_configs
from ..models import build_model
from ..models.info import describe


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("model", help="describe a model or create an untrained checkpoint")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    info = actions.add_parser("info", help="parameters by part, GFLOPs per second of audio, sizes")
    info.add_argument("source", help=f"a checkpoint, a YAML config, or a named config ({', '.join(named_configs())})")
    info.add_argument("--speakers", type=int, default=5994,
                      help="training speakers, to size the head (default: VoxCeleb2 dev)")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=run_info)

    init = actions.add_parser("init", help="write an untrained checkpoint (for export, benchmarks, tests)")
    init.add_argument("config", help="a named config or a YAML file")
    init.add_argument("-o", "--output", required=True, help="checkpoint file to write")
    init.add_argument("--seed", type=int, default=0)
    init.add_argument("overrides", nargs="*",
                      help="config overrides key=value (before -o), e.g. model.embedding_dim=256")
    init.set_defaults(func=run_init)


def run_info(args: argparse.Namespace) -> int:
    info = describe(args.source, args.speakers)
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    print(f"model: {info['source']}  (trunk {info['trunk']}, pooling {info['pooling']})")
    print(f"input: {info['input']}")
    print(f"embedding: {info['embedding_dim']}-d; shortest input {info['min_seconds']} s")
    print(f"compute: {info['gflops_per_second_of_audio']} GFLOPs per second of audio")
    print("parameters:")
    for part, count in info["parameters"].items():
        note = f"  ({info['head']})" if part == "head" else ""
        print(f"  {part:<10} {count:>12,}{note}")
    print(f"  {'total':<10} {info['parameters_without_head']:>12,}  (without head)")
    return 0


def run_init(args: argparse.Namespace) -> int:
    cfg = apply_overrides(load_config(args.config), args.overrides)
    torch.manual_seed(args.seed)
    net = build_model(cfg.model)
    path = save_checkpoint(args.output, net, cfg, provenance={"training": "untrained", "seed": args.seed})
    print(f"wrote untrained {args.config} checkpoint to {path}")
    return 0
