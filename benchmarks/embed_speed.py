"""How fast speakervlad embeds audio on this machine, against its matrix-multiply peak and ECAPA-TDNN.

Everything is measured in one run on the same generated audio (WAV files in a
temporary folder), end to end from file to embedding:

* the machine's fp32 and bf16 matmul peak (GFLOP/s, a large torch.matmul);
* per model and path: x real time (seconds of audio per second of wall time) for
  one 10 s file and for a batch of 100 files of 2-20 s (``speakervlad.embedding.extraction``:
  header reading, parallel decoding, length-bucketed batches, saving; timed twice:
  the first pass also grows the heap, the second is the steady state), and the
  achieved GFLOP/s (FlopCounterMode, useful frames only) as a fraction of the peak;
  the same figures per CPU-second (process time), which other processes on a
  shared machine disturb much less than wall time;
* SpeechBrain's ECAPA-TDNN (C=1024, random weights) on the same files;
* the batch's steady-state throughput against one long (60 s) file (both warmed up);
* fp32 vs bf16 / ONNX / TorchScript embeddings on real speech when ../shared/data is there.

Paths: ``fp32-plain`` the network as trained (no inference rewrites), ``fp32`` the
default ``EmbeddingModel`` (BatchNorm folded, channels-last, in-place steps),
``bf16`` its bfloat16 trunk, ``onnx`` ONNX Runtime, ``torchscript`` a frozen trace.
Like ``speakervlad extract``, the run first makes malloc keep freed memory
(``retain_freed_memory``; ``--release-memory`` to measure without).

    python benchmarks/embed_speed.py                       # all (about 4-5 min on 2 idle cores)
    python benchmarks/embed_speed.py --models thin_resnet34_ghostvlad --paths fp32 bf16 --files 20 --no-peer

``--models`` takes config names or checkpoint files (speed does not depend on the
weights; the fp32/bf16 agreement is only meaningful for trained weights).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.flop_counter import FlopCounterMode

from speakervlad.audio import load_audio
from speakervlad.checkpoint import load_checkpoint
from speakervlad.config import load_config
from speakervlad.embedding.export import export_onnx, export_torchscript, load_torchscript
from speakervlad.embedding.extraction import extract, list_items
from speakervlad.embedding.onnx_embedder import OnnxEmbedder
from speakervlad.embedding.torch_embedder import EmbeddingModel, pad_batch, retain_freed_memory
from speakervlad.models import build_model

PATHS = ("fp32-plain", "fp32", "bf16", "onnx", "torchscript")
BATCH_PATHS = ("fp32", "bf16", "onnx")
REAL_SPEECH = Path(__file__).resolve().parents[2] / "shared" / "data" / "librispeech-train-clean-100-subset"
RATE = 16000


# ---- measuring --------------------------------------------------------------
def timed(fn) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def best_of(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm-up: allocator, oneDNN primitives, ORT arenas
    runs = [timed(fn) for _ in range(repeats)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def two_passes(fn) -> list[tuple[float, float]]:
    """[first pass, second pass] timings of a batch job.

    The first pass also grows the process's heap to the batches' peak (page faults
    on fresh memory); the second runs at the steady state of a long extraction,
    the state that a warmed-up single-file timing is in.
    """
    return [timed(fn), timed(fn)]


def matmul_peak(dtype: torch.dtype, repeats: int) -> tuple[float, float]:
    """(GFLOP/s per wall second, GFLOP/s per CPU second) of a 2048^3 matmul."""
    n = 2048
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    wall, cpu = best_of(lambda: [a @ b for _ in range(4)], repeats)
    flops = 4 * 2 * n**3 / 1e9
    return flops / wall, flops / cpu


def gflops_per_audio_second(forward, seconds: float = 10.0) -> float:
    wave = torch.randn(1, int(seconds * RATE)) * 0.1
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        forward(wave, torch.tensor([wave.shape[1]]))
    return counter.get_total_flops() / seconds / 1e9


# ---- audio ------------------------------------------------------------------
def voice_like(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Harmonics with a wandering pitch, plus noise: non-silent test audio (content does not change speed)."""
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 120 + 40 * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    wave = sum(np.sin(k * phase) / k for k in range(1, 8))
    return (0.05 * wave + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def make_audio(folder: Path, files: int) -> dict:
    rng = np.random.default_rng(0)
    sf.write(folder / "ten.wav", voice_like(10.0, rng), RATE, subtype="PCM_16")
    sf.write(folder / "long.wav", voice_like(60.0, rng), RATE, subtype="PCM_16")
    seconds = rng.uniform(2.0, 20.0, files)
    for i, s in enumerate(seconds):
        path = folder / "batch" / f"utt{i:03d}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, voice_like(float(s), rng), RATE, subtype="PCM_16")
    return {"ten": folder / "ten.wav", "long": folder / "long.wav", "batch": folder / "batch",
            "batch_seconds": float(seconds.sum())}


# ---- the runners ----------------------------------------------------------------
class Runner:
    """One model on one path: ``single(path)`` and ``many(folder)`` embed files end to end."""

    def __init__(self, name: str, path: str, net: torch.nn.Module, workdir: Path):
        self.name, self.path, self.workdir = name, path, workdir
        if path in ("fp32", "fp32-plain", "bf16"):
            model = EmbeddingModel(net, precision="bf16" if path == "bf16" else "fp32", fuse=path != "fp32-plain")
            self.embed_file = model.embed
            self.embed_waves = model.embed_waveforms
            self.model = model
        elif path == "onnx":
            export_onnx(net, workdir / f"{name}.onnx")
            onnx = OnnxEmbedder(workdir / f"{name}.onnx", threads=torch.get_num_threads())
            self.embed_file, self.embed_waves = onnx.embed, onnx.embed_waveforms
        else:
            export_torchscript(net, workdir / f"{name}.ts")
            module = load_torchscript(workdir / f"{name}.ts")

            def embed_waves(waves, batch_size=16):
                batch, lengths = pad_batch(waves)
                with torch.inference_mode():
                    return module(batch, lengths).numpy()

            self.embed_waves = embed_waves
            self.embed_file = lambda path: embed_waves([load_audio(path)])[0]

    def single(self, path: Path, repeats: int) -> tuple[float, float]:
        return best_of(lambda: self.embed_file(path), repeats)

    def many(self, folder: Path, jobs: int) -> list[tuple[float, float]]:
        """Timings of two passes over the folder (see ``two_passes``)."""
        if hasattr(self, "model"):  # the extraction pipeline, as `speakervlad extract` runs it
            items = list_items(audio_root=folder)
            return two_passes(lambda: extract(self.model, items, self.workdir / f"emb-{time.time_ns()}",
                                              jobs=jobs, progress=False))
        paths = sorted(folder.glob("*.wav"))
        return two_passes(lambda: self.embed_waves([load_audio(p) for p in paths]))


class Ecapa:
    """SpeechBrain's ECAPA-TDNN (C=1024) with its 80-bin Fbank and sentence mean normalisation."""

    def __init__(self):
        from speechbrain.lobes.features import Fbank
        from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
        from speechbrain.processing.features import InputNormalization

        torch.manual_seed(0)
        self.fbank = Fbank(n_mels=80)
        self.norm = InputNormalization(norm_type="sentence", std_norm=False)
        self.net = ECAPA_TDNN(80, channels=[1024, 1024, 1024, 1024, 3072], lin_neurons=192).eval()

    def forward(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        relative = lengths.float() / waves.shape[1]
        feats = self.norm(self.fbank(waves), relative)
        return self.net(feats, relative)[:, 0]

    def embed_waves(self, waves, batch_size: int = 16) -> np.ndarray:
        order = sorted(range(len(waves)), key=lambda i: len(waves[i]))
        out = np.zeros((len(waves), 192), np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                index = order[start:start + batch_size]
                out[index] = self.forward(*pad_batch([waves[i] for i in index])).numpy()
        return out

    def single(self, path: Path, repeats: int) -> tuple[float, float]:
        return best_of(lambda: self.embed_waves([load_audio(path)]), repeats)

    def many(self, folder: Path, jobs: int) -> list[tuple[float, float]]:
        from concurrent.futures import ThreadPoolExecutor

        paths = sorted(folder.glob("*.wav"))

        def decode_and_embed():
            with ThreadPoolExecutor(jobs) as pool:
                self.embed_waves(list(pool.map(load_audio, paths)))
        return two_passes(decode_and_embed)


# ---- report -------------------------------------------------------------------
def machine() -> str:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        cpu = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}), "
            f"{torch.get_num_threads()} intra-op thread(s)")


def row(cells: list) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["thin_resnet34_ghostvlad", "resnet34_ghostvlad"])
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    parser.add_argument("--batch-paths", nargs="+", choices=BATCH_PATHS, default=["fp32", "bf16"],
                        help="paths also timed on the 100-file batch (default fp32 bf16)")
    parser.add_argument("--files", type=int, default=100, help="files in the batch (2-20 s each)")
    parser.add_argument("--repeats", type=int, default=3, help="best of N for the 10 s file")
    parser.add_argument("--jobs", type=int, default=2, help="decoding threads in the batch")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--no-peer", action="store_true", help="skip ECAPA-TDNN")
    parser.add_argument("--real-files", type=int, default=12,
                        help="real-speech files for the agreement check (0: skip)")
    parser.add_argument("--release-memory", action="store_true",
                        help="leave glibc malloc at its defaults (freed activations returned to the OS)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    retained = not args.release_memory and retain_freed_memory()  # as `speakervlad extract` does
    started = time.perf_counter()
    print(f"# embed_speed {datetime.date.today()} on {machine()}")
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}; "
          f"malloc keeps freed memory: {retained}\n")
    peak = {dtype: matmul_peak(getattr(torch, dtype), args.repeats) for dtype in ("float32", "bfloat16")}
    print(f"matmul peak: fp32 {peak['float32'][0]:.0f} GFLOP/s ({peak['float32'][1]:.0f} per CPU-second), "
          f"bf16 {peak['bfloat16'][0]:.0f} GFLOP/s ({peak['bfloat16'][1]:.0f} per CPU-second)\n")
    scratch = tempfile.TemporaryDirectory(prefix="embed_speed.")
    try:
        run(args, peak, Path(scratch.name))
    finally:
        scratch.cleanup()
    print(f"\nload average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}; "
          f"benchmark took {time.perf_counter() - started:.0f} s")
    return 0


def run(args: argparse.Namespace, peak: dict, workdir: Path) -> None:
    audio = make_audio(workdir, args.files)
    nets = {}
    for source in args.models:
        if Path(source).is_file():
            checkpoint = load_checkpoint(source)
            nets[Path(source).stem] = checkpoint.build_model()
        else:
            torch.manual_seed(0)
            nets[source] = build_model(load_config(source).model).eval()
    print(row(["model", "path", "input", "x RT", "GFLOP/s", "% of fp32 peak", "x RT per CPU-s", "% of peak per CPU-s"]))
    print(row(["---"] * 8))
    results, gflops_by_model, runners = {}, {}, {}

    def report(name: str, path: str, what: str, seconds: float, gflops: float, timing: tuple[float, float]):
        wall, cpu = timing
        results[(name, path, what)] = seconds / wall
        rate, rate_cpu = gflops * seconds / wall, gflops * seconds / cpu
        print(row([name, path, what, f"{seconds / wall:.1f}", f"{rate:.1f}", f"{100 * rate / peak['float32'][0]:.0f}%",
                   f"{seconds / cpu:.1f}", f"{100 * rate_cpu / peak['float32'][1]:.0f}%"]), flush=True)

    batch_label = f"{args.files} files, {audio['batch_seconds']:.0f} s"

    def report_batch(name: str, path: str, gflops: float, passes: list[tuple[float, float]]):
        first, second = passes
        report(name, path, f"{batch_label}, 1st pass", audio["batch_seconds"], gflops, first)
        report(name, path, batch_label, audio["batch_seconds"], gflops, second)
    for name, net in nets.items():
        gflops = gflops_by_model[name] = gflops_per_audio_second(net)
        for path in args.paths:
            runner = runners[(name, path)] = Runner(name, path, net, workdir)
            report(name, path, "10 s file", 10.0, gflops, runner.single(audio["ten"], args.repeats))
            if path in args.batch_paths and args.files:
                report_batch(name, path, gflops, runner.many(audio["batch"], args.jobs))
            if path == "fp32" and args.files:
                report(name, path, "60 s file", 60.0, gflops, runner.single(audio["long"], 1))
    ecapa_gflops = None
    if not args.no_peer:
        ecapa = Ecapa()
        gflops = ecapa_gflops = gflops_per_audio_second(ecapa.forward)
        report("ecapa_tdnn_c1024", "fp32", "10 s file", 10.0, gflops, ecapa.single(audio["ten"], args.repeats))
        if args.files:
            report_batch("ecapa_tdnn_c1024", "fp32", gflops, ecapa.many(audio["batch"], args.jobs))
    print()
    summarize(results, nets, gflops_by_model, ecapa_gflops, batch_label)
    if args.real_files and REAL_SPEECH.is_dir():
        agreement(nets, runners, sorted(REAL_SPEECH.glob("*.flac"))[: args.real_files])


def summarize(results: dict, nets: dict, gflops_by_model: dict, ecapa_gflops: float | None, batch_label: str) -> None:
    print("ratios (same run):")
    for name in nets:
        base = results.get((name, "fp32", "10 s file"))
        for path in ("bf16", "onnx", "torchscript", "fp32-plain"):
            if base and (name, path, "10 s file") in results:
                print(f"  {name}: {path} / fp32 (10 s file) = {results[(name, path, '10 s file')] / base:.2f}x")
        if base and (name, "bf16", batch_label) in results and (name, "fp32", batch_label) in results:
            print(f"  {name}: bf16 / fp32 ({batch_label}) = "
                  f"{results[(name, 'bf16', batch_label)] / results[(name, 'fp32', batch_label)]:.2f}x")
        if (name, "fp32", batch_label) in results and (name, "fp32", "60 s file") in results:
            print(f"  {name}: batch of {batch_label} / one 60 s file throughput = "
                  f"{100 * results[(name, 'fp32', batch_label)] / results[(name, 'fp32', '60 s file')]:.0f}%")
        peer_key, our_key = ("ecapa_tdnn_c1024", "fp32", batch_label), (name, "fp32", batch_label)
        if ecapa_gflops and peer_key in results and our_key in results:
            ours, peer = results[our_key], results[peer_key]
            print(f"  {name} vs ECAPA-TDNN ({batch_label}): {ours / peer:.2f}x the real-time factor, "
                  f"{ours * gflops_by_model[name] / (peer * ecapa_gflops):.2f}x the GFLOP/s "
                  f"({gflops_by_model[name]:.2f} vs {ecapa_gflops:.2f} GFLOP per audio second)")


def agreement(nets: dict, runners: dict, files: list[Path]) -> None:
    """fp32 vs the other paths on real speech: embedding cosine, and the change in trial scores."""
    waves = [load_audio(f) for f in files]
    print(f"\nagreement with fp32 on {len(files)} LibriSpeech files ({sum(map(len, waves)) / RATE:.0f} s):")
    for name, net in nets.items():
        fp32 = EmbeddingModel(net).embed_waveforms(waves)
        scores = _cosine_matrix(fp32, fp32)
        spread = scores[~np.eye(len(files), dtype=bool)]
        print(f"  {name}: fp32 scores between different speakers: mean {spread.mean():.3f}, std {spread.std():.3f}")
        for (model, path), runner in runners.items():
            if model != name or path in ("fp32", "fp32-plain"):
                continue
            other = runner.embed_waves(waves)
            same = np.diag(_cosine_matrix(fp32, other))
            # centred: the mean embedding removed, so a direction shared by all files cannot hide differences
            centred = np.diag(_cosine_matrix(fp32 - fp32.mean(0), other - other.mean(0)))
            delta = np.abs(_cosine_matrix(other, other) - scores).max()
            print(f"  {name} {path}: cosine to fp32 min {same.min():.6f} (centred {centred.min():.6f}); "
                  f"max |embedding diff| {np.abs(other - fp32).max():.1e}; max |score change| {delta:.1e}")


def _cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


if __name__ == "__main__":
    sys.exit(main())
