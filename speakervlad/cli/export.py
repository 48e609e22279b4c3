"""`speakervlad export`: write a checkpoint as ONNX or TorchScript (waveform in, embedding out)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..embedding.export import DEFAULT_OPSET, FORMATS, export_model


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export a model to ONNX or TorchScript (dynamic batch and time axes)",
        description="Export the whole network, frontend included: waves (B, N) float32 at 16 kHz and "
        "lengths (B,) int64 in, embeddings (B, E) out. The export is checked against PyTorch (1e-4).",
    )
    parser.add_argument("--model", required=True, help="checkpoint file")
    parser.add_argument("--format", choices=FORMATS, default="onnx")
    parser.add_argument("-o", "--output", required=True, help="file to write (model.onnx, model.ts)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (>= 17; default {DEFAULT_OPSET})")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    worst = export_model(args.model, args.output, args.format, args.opset)
    size = Path(args.output).stat().st_size / 2**20
    print(f"wrote {args.format} model to {args.output} ({size:.1f} MiB); "
          f"max |difference| to PyTorch {worst:.1e} (checked)")
    return 0
