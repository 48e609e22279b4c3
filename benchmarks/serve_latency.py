"""Latency and throughput of the HTTP service (``speakervlad serve``), per model.

For each model: start the real server on a loopback port with a fresh store,
enroll a speaker, then measure

* verify latency for one recording (median and p95 over ``--requests`` warm requests),
* the same embedding computed in-process (no HTTP), to show the service's overhead,
* enrollments/s and verifications/s with ``--clients`` concurrent clients.

Speed does not depend on training, so untrained checkpoints of the named
configs are fine (``--config``); ``--model`` takes real checkpoints. The table
also gives the model's GFLOPs per request and the achieved fraction of this
machine's fp32 matrix-multiply peak, measured in the same run::

    python benchmarks/serve_latency.py --config thin_resnet34_ghostvlad resnet34_ghostvlad
"""
from __future__ import annotations

import argparse
import io
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
import torch

from speakervlad.checkpoint import save_checkpoint
from speakervlad.config import load_config
from speakervlad.data.synth import draw_voice, synthesize_utterance
from speakervlad.embedding.torch_embedder import load_model
from speakervlad.models import build_model
from speakervlad.models.info import gflops_per_second

RATE = 16000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", nargs="*", default=[], help="named configs (untrained checkpoints)")
    parser.add_argument("--model", nargs="*", default=[], type=Path, help="checkpoint files")
    parser.add_argument("--audio", type=Path, help="recording to send (default: 5 s of synthetic voice)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the synthetic recording")
    parser.add_argument("--requests", type=int, default=100, help="sequential verify requests")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--concurrent-requests", type=int, default=40, help="requests per concurrent phase")
    parser.add_argument("--threads", type=int, help="torch threads, here and in the server (default: torch's)")
    args = parser.parse_args()
    if not args.config and not args.model:
        parser.error("give --config NAME... and/or --model CKPT...")

    if args.threads:
        torch.set_num_threads(args.threads)
    audio = args.audio.read_bytes() if args.audio else synthetic_wav(args.seconds)
    seconds = sf.info(io.BytesIO(audio)).duration
    peak = matmul_gflops()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        models = [(str(m), m) for m in args.model]
        for name in args.config:
            torch.manual_seed(0)
            cfg = load_config(name)
            models.append((name, save_checkpoint(Path(tmp) / f"{name}.pt", build_model(cfg.model), cfg)))
        for label, path in models:
            print(f"measuring {label} ...", file=sys.stderr, flush=True)
            rows.append((label, *measure(path, Path(tmp), audio, args)))
    peak = max(peak, matmul_gflops())  # the machine may be shared: keep the better of two readings
    print(f"\nverify of a {seconds:.1f} s recording over HTTP on 127.0.0.1; {args.requests} warm sequential "
          f"requests; {args.clients} concurrent clients x {args.concurrent_requests} requests; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at the end; fp32 matmul peak {peak:.0f} GFLOP/s "
          f"(best of a reading before and after)\n")
    print("| model | GFLOP/request | in-process embed ms | verify median ms | verify p95 ms "
          "| % of matmul peak | enroll/s | verify/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, gflop, embed_ms, median, p95, enrolls, verifies in rows:
        share = 100 * gflop / (median / 1000) / peak
        print(f"| {label} | {gflop:.2f} | {embed_ms:.0f} | {median:.0f} | {p95:.0f} | {share:.0f}% "
              f"| {enrolls:.2f} | {verifies:.2f} |")


def measure(model: Path, tmp: Path, audio: bytes, args: argparse.Namespace) -> tuple[float, ...]:
    """(GFLOP per request, in-process ms, median ms, p95 ms, enrollments/s, verifications/s)."""
    local = load_model(model)
    wave, _ = sf.read(io.BytesIO(audio), dtype="float32")
    gflop = gflops_per_second(local.net, seconds=len(wave) / RATE) * len(wave) / RATE
    for _ in range(3):  # the first calls pay for allocator and kernel set-up
        local.embed_waveform(wave)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        local.embed_waveform(wave)
        times.append((time.perf_counter() - started) * 1000)
    embed_ms = statistics.median(times)
    del local

    key = secrets.token_urlsafe(32)
    port = free_port()
    db = tmp / f"{model.stem}-{port}.db"
    server = subprocess.Popen(
        [sys.executable, "-m", "speakervlad.cli.main", "serve", "--model", str(model), "--db", str(db),
         "--port", str(port), "--threshold", "0.5",
         *(["--threads", str(args.threads)] if args.threads else [])],
        env={**os.environ, "SPEAKERVLAD_API_KEY": key}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, server)
        headers = {"X-API-Key": key}
        with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
            post(client, "/speakers/bench/enroll", "files", audio)
            for _ in range(10):
                post(client, "/speakers/bench/verify", "file", audio)
            latencies = []
            for _ in range(args.requests):
                started = time.perf_counter()
                post(client, "/speakers/bench/verify", "file", audio)
                latencies.append((time.perf_counter() - started) * 1000)
        enrolls = concurrent_rate(url, headers, audio, args, enroll=True)
        verifies = concurrent_rate(url, headers, audio, args, enroll=False)
    finally:
        server.terminate()
        server.wait(timeout=30)
    median = statistics.median(latencies)
    p95 = float(np.percentile(latencies, 95))
    return gflop, embed_ms, median, p95, enrolls, verifies


def concurrent_rate(url: str, headers: dict, audio: bytes, args: argparse.Namespace, enroll: bool) -> float:
    """Requests per second with ``args.clients`` clients sharing ``args.concurrent_requests`` requests."""
    def work(i: int, client: httpx.Client) -> None:
        if enroll:
            post(client, f"/speakers/c{i}/enroll", "files", audio)
        else:
            post(client, "/speakers/bench/verify", "file", audio)

    clients = [httpx.Client(base_url=url, headers=headers, timeout=300) for _ in range(args.clients)]
    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(lambda i: work(i, clients[i % args.clients]), range(args.concurrent_requests)))
        return args.concurrent_requests / (time.perf_counter() - started)
    finally:
        for client in clients:
            client.close()


def post(client: httpx.Client, path: str, field: str, audio: bytes) -> dict:
    response = client.post(path, files=[(field, ("audio.wav", audio, "audio/wav"))])
    response.raise_for_status()
    return response.json()


def wait_healthy(url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited: {server.stderr.read().decode() if server.stderr else ''}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError("server did not become healthy in 120 s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def synthetic_wav(seconds: float) -> bytes:
    """Synthetic speech (speakervlad.data.synth), so the server's VAD and speech gate pass it."""
    wave = synthesize_utterance(draw_voice(np.random.default_rng(0), "bench"), np.random.default_rng(1), seconds)
    buffer = io.BytesIO()
    sf.write(buffer, wave, RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def matmul_gflops(n: int = 1024, repeats: int = 20) -> float:
    """This machine's fp32 matrix-multiply rate (GFLOP/s), best of a few runs."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 * repeats / best / 1e9


if __name__ == "__main__":
    main()
