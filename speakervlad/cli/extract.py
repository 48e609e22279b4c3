"""`speakervlad extract` and `speakervlad extract-merge`: embeddings for a whole corpus.

    speakervlad extract --model model.pt --audio-root wav/ -o emb/
    speakervlad extract --model model.pt --list keys.txt --audio-root wav/ -o emb/ --shard 0/4
    torchrun --nproc-per-node 4 -m speakervlad.cli.main extract --model model.pt --audio-root wav/ -o emb/
    speakervlad extract-merge emb/shard-*-of-4 -o emb_all/
"""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import torch

from ..embedding import open_embedder
from ..embedding.extraction import MAX_PADDING, extract, list_items
from ..embedding.shards import find_shards, merge_shards, parse_shard, shard_from_env
from ..embedding.torch_embedder import PRECISIONS, retain_freed_memory
from ..errors import ConfigError
from .speech_args import add_vad_args, vad_from_args

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "extract", help="embed a whole corpus: batched, parallel decoding, resumable, shardable",
        description="Embed every file of a list or folder into an embedding directory. A re-run skips "
        "what is done; --shard i/n (or torchrun) splits the work; the last shard merges.",
    )
    parser.add_argument("--model", required=True, help="checkpoint, or its ONNX export (.onnx)")
    parser.add_argument("--list", help="file of keys (paths relative to --audio-root), one per line, "
                        "or a TSV utterance list key<TAB>speaker<TAB>path")
    parser.add_argument("--audio-root", help="folder the keys are relative to; alone: embed every audio file under it")
    parser.add_argument("-o", "--output", required=True, help="embedding directory to write (created)")
    parser.add_argument("--shard", help="i/n: embed only shard i of n (default: RANK/WORLD_SIZE under torchrun)")
    parser.add_argument("--batch-size", type=int, default=16, help="files per batch (default 16)")
    parser.add_argument("--max-batch-seconds", type=float, default=120.0,
                        help="padded audio per batch, bounds memory (default 120)")
    parser.add_argument("--max-padding", type=float, default=MAX_PADDING,
                        help=f"padding a batch may add, as a fraction of its audio (default {MAX_PADDING}; "
                        "on GPUs a larger value gives fuller batches)")
    parser.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1), help="decoding threads")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="fp32 (exact) or bf16 autocast (faster on CPUs with AVX512-BF16/AMX and on GPUs)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    add_vad_args(parser, default=False)
    parser.set_defaults(func=run)

    merge = subparsers.add_parser("extract-merge", help="merge the shard directories of `extract --shard` into one")
    merge.add_argument("shards", nargs="+", help="shard directories (shard-i-of-n), or the folder holding them")
    merge.add_argument("-o", "--output", required=True, help="embedding directory to write")
    merge.set_defaults(func=run_merge)


def run(args: argparse.Namespace) -> int:
    if args.list is None and args.audio_root is None:
        raise ConfigError("give --list FILE and/or --audio-root DIR")
    if args.batch_size < 1 or args.jobs < 1:
        raise ConfigError("--batch-size and --jobs must be at least 1")
    if args.max_padding < 0:
        raise ConfigError(f"--max-padding must be 0 or more, got {args.max_padding}")
    shard = parse_shard(args.shard) if args.shard else shard_from_env()
    local_procs = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if local_procs > 1 and args.device == "cpu":  # torchrun: share the cores between the processes
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_procs))
    items = list_items(args.list, args.audio_root)
    retain_freed_memory()  # activations reused without page faults: faster, at the cost of keeping peak memory
    model = open_embedder(args.model, device=args.device, precision=args.precision)
    meta = {"checkpoint": str(args.model), "source": str(args.list or args.audio_root), "precision": args.precision}
    result = extract(model, items, args.output, shard=shard, batch_size=args.batch_size,
                     max_batch_seconds=args.max_batch_seconds, max_padding=args.max_padding, jobs=args.jobs,
                     meta=meta, vad=vad_from_args(args))
    speed = result.audio_seconds / result.wall_seconds if result.wall_seconds else 0.0
    now = (f"{result.computed} computed now ({result.audio_seconds:.0f} s of audio, {speed:.1f}x real time)"
           if result.computed else "all were done before")
    print(f"wrote {result.embedded} embeddings ({model.embedding_dim}-d) to {result.out}: {now}"
          + ("; all shards merged" if result.merged else ""))
    if result.unusable:
        print(f"skipped {len(result.unusable)} unusable recordings; see {result.out / 'unusable.tsv'}")
    return 1 if result.unusable and not result.embedded else 0


def run_merge(args: argparse.Namespace) -> int:
    shards = []
    for given in args.shards:
        found = find_shards(given)
        shards.extend(found if found else [Path(given)])
    merged = merge_shards(shards, args.output)
    print(f"merged {len(shards)} shards into {args.output}: {len(merged)} embeddings ({merged.dim}-d)")
    return 0
