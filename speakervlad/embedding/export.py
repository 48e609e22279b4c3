"""Export a model to ONNX or TorchScript, and embed with ONNX Runtime alone.

Both exports take the whole network, frontend included: waveforms (B, N)
float32 at 16 kHz and their lengths (B,) int64 in, embeddings (B, E) out, with
dynamic batch and time axes. Padding never changes an embedding, as in PyTorch.
The ONNX graph uses the standard STFT / DFT operators (opset 17+) and equals the
PyTorch model within 1e-4 (checked on export).

>>> export_onnx("model.pt", "model.onnx")                      # doctest: +SKIP
>>> OnnxEmbedder("model.onnx").embed("speech.wav").shape        # doctest: +SKIP
(512,)

:class:`~speakervlad.embedding.onnx_embedder.OnnxEmbedder` runs the export with onnxruntime
alone, without torch.
"""
from __future__ import annotations

import contextlib
import copy
import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..checkpoint import load_checkpoint, model_fingerprint
from ..config import to_dict
from ..errors import ConfigError
from ..models.speaker_net import SpeakerNet
from .onnx_embedder import META_PREFIX, OnnxEmbedder

logger = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")
MIN_OPSET = 17  # STFT and DFT
DEFAULT_OPSET = 18
TOLERANCE = 1e-4
EXAMPLE_SECONDS = 3.0


def export_model(
    model: SpeakerNet | str | Path, out: str | Path, fmt: str = "onnx", opset: int = DEFAULT_OPSET
) -> float:
    """Export a checkpoint (path) or network to ``out``; returns the verified max |difference| to PyTorch."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    if fmt == "onnx":
        return export_onnx(model, out, opset=opset)
    return export_torchscript(model, out)


def export_onnx(model: SpeakerNet | str | Path, out: str | Path, opset: int = DEFAULT_OPSET) -> float:
    """Write an ONNX model (one file) with dynamic batch and time axes; returns the max |diff| to PyTorch.

    Inputs ``waves`` (B, N) float32 and ``lengths`` (B,) int64; output ``embeddings`` (B, E).
    The model's sample rate, embedding size, shortest input and calibration are stored as
    metadata (``speakervlad.*``).
    """
    if opset < MIN_OPSET:
        raise ConfigError(f"the ONNX opset must be at least {MIN_OPSET} (STFT and DFT operators), got {opset}")
    net, meta = _network(model)
    waves, lengths = _example(net, EXAMPLE_SECONDS)
    # symbolic shapes are reasoned about from this length on; the graph itself works for any length
    batch, samples = torch.export.Dim("batch", min=1), torch.export.Dim("samples", min=2 * net.min_samples)
    with torch.no_grad(), warnings.catch_warnings(), _quiet("onnxscript", "onnx_ir"):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            _exportable(net), (waves, lengths), dynamo=True, opset_version=opset, verbose=False,
            input_names=["waves", "lengths"], output_names=["embeddings"],
            dynamic_shapes=({0: batch, 1: samples}, {0: batch}),
        )
    for key, value in meta.items():
        program.model.metadata_props[META_PREFIX + key] = value
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    program.save(out, external_data=False)
    embedder = OnnxEmbedder(out)
    return _verify(net, lambda w, n: embedder.run(w.numpy(), n.numpy()), "ONNX")


def export_torchscript(model: SpeakerNet | str | Path, out: str | Path) -> float:
    """Write a frozen TorchScript model (traced; dynamic batch and time); returns the max |diff| to PyTorch.

    Load it with :func:`load_torchscript` or ``torch.jit.load``; call it as ``module(waves, lengths)``.
    """
    net, meta = _network(model)
    waves, lengths = _example(net, EXAMPLE_SECONDS)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        # the one traced branch (input shorter than a window) lies below the model's shortest input
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is in maintenance upstream
        traced = torch.jit.freeze(torch.jit.trace(net, (waves, lengths), check_trace=False))
        torch.jit.save(traced, str(out), _extra_files={"speakervlad.json": json.dumps(meta)})
    loaded = load_torchscript(out, optimize=False)
    return _verify(net, lambda w, n: loaded(w, n).numpy(), "TorchScript")


def load_torchscript(path: str | Path, optimize: bool = True) -> torch.jit.ScriptModule:
    """A TorchScript model written by :func:`export_torchscript`, ready to call on CPU.

    ``optimize`` applies ``torch.jit.optimize_for_inference`` (oneDNN-prepacked
    convolutions, fused activations): about 1.4x faster on CPU, same results to float rounding.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(path), map_location="cpu").eval()
        return torch.jit.optimize_for_inference(module) if optimize else module


def _network(model: SpeakerNet | str | Path) -> tuple[SpeakerNet, dict[str, str]]:
    """The network in eval mode and the metadata stored with an export."""
    calibration = None
    if isinstance(model, (str, Path)):
        checkpoint = load_checkpoint(model)
        net, calibration = checkpoint.build_model(), checkpoint.calibration
    else:
        net = model.eval()
    meta = {
        "sample_rate": str(net.sample_rate),
        "embedding_dim": str(net.embedding_dim),
        "min_samples": str(net.min_samples),
        "fingerprint": model_fingerprint(net),
        "model_config": json.dumps(to_dict(net.config)),
        "calibration": json.dumps(calibration),
        "version": __version__,
    }
    return net, meta


class _StridedMaxPool(nn.Module):
    """Max pooling with kernel = stride and no padding, as reshapes and maxima.

    Equal to ``nn.MaxPool2d(k, k)``; shape reasoning on a dynamic time axis needs no
    guard on its parity (which ``max_pool2d``'s output-size rule adds on export).
    """

    def __init__(self, kernel: tuple[int, int]):
        super().__init__()
        self.kernel = kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kf, kt = self.kernel
        f, t = x.shape[-2] // kf, x.shape[-1] // kt
        x = x.narrow(-2, 0, f * kf).narrow(-1, 0, t * kt)  # drop the rows a floor-mode pool drops
        x = x.unflatten(-1, (t, kt)).amax(-1)  # (B, C, F', T // kt)
        return x.unflatten(-2, (f, kf)).amax(-2)  # (B, C, F // kf, T // kt)


def _exportable(net: SpeakerNet) -> SpeakerNet:
    """A copy of ``net`` whose time-strided max poolings export with a dynamic time axis."""
    net = copy.deepcopy(net).eval()
    for module in list(net.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.MaxPool2d):
                kernel, stride = nn.modules.utils._pair(child.kernel_size), nn.modules.utils._pair(child.stride)
                plain = child.padding in (0, (0, 0)) and child.dilation in (1, (1, 1)) and not child.ceil_mode
                if plain and kernel == stride and kernel[1] > 1:
                    setattr(module, name, _StridedMaxPool(kernel))
    return net


@contextlib.contextmanager
def _quiet(*loggers: str):
    """Silence the exporter's INFO chatter (it logs every rewrite)."""
    saved = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _example(net: SpeakerNet, seconds: float) -> tuple[torch.Tensor, torch.Tensor]:
    """A padded batch of two noise recordings of different lengths."""
    gen = torch.Generator().manual_seed(0)
    samples = max(int(seconds * net.sample_rate), 4 * net.min_samples)
    waves = torch.randn(2, samples, generator=gen) * 0.1
    lengths = torch.tensor([samples, samples - samples // 3 - 37])
    waves[1, int(lengths[1]):] = 0
    return waves, lengths


def _verify(net: SpeakerNet, run: Callable[[torch.Tensor, torch.Tensor], np.ndarray], what: str) -> float:
    """Max |difference| between the export and PyTorch on lengths other than the example's."""
    waves, lengths = _example(net, EXAMPLE_SECONDS * 1.7 + 0.01)
    with torch.no_grad():
        expected = net(waves, lengths).numpy()
    worst = float(np.abs(run(waves, lengths) - expected).max())
    if not worst <= TOLERANCE:
        raise RuntimeError(f"the {what} export differs from PyTorch by {worst:.3g} (> {TOLERANCE}); please report this")
    logger.info("%s export verified: max |difference| to PyTorch %.2g", what, worst)
    return worst
