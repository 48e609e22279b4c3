"""Peak memory of embedding one long recording: it stays bounded as the recording grows.

Each duration runs in a fresh process: write a WAV of that length (generated, in
a temporary folder), load the model, embed the file with ``EmbeddingModel.embed``
(chunked beyond ``chunk_seconds``), and report the peak resident set size.
Like ``speakervlad embed`` and ``extract``, the child first makes malloc keep freed
memory (``retain_freed_memory``: the same peak, no page faults on every chunk);
``--release-memory`` measures without.

    python benchmarks/embed_memory.py                          # 1 and 60 minutes, thin_resnet34_ghostvlad
    python benchmarks/embed_memory.py --minutes 10 --model resnet34_ghostvlad
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RATE = 16000


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def child(model_name: str, minutes: float, precision: str, release: bool) -> dict:
    import numpy as np
    import soundfile as sf
    import torch

    from speakervlad.config import load_config
    from speakervlad.embedding.torch_embedder import EmbeddingModel, retain_freed_memory
    from speakervlad.models import build_model

    retained = not release and retain_freed_memory()
    folder = Path(tempfile.mkdtemp(prefix="embed_memory."))
    path = folder / "long.wav"
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", RATE, 1, subtype="PCM_16") as out:  # written a minute at a time
        left = int(minutes * 60 * RATE)
        while left > 0:
            t = np.arange(min(left, 60 * RATE)) / RATE
            out.write(0.05 * np.sin(2 * np.pi * rng.uniform(100, 300) * t) + 0.01 * rng.standard_normal(len(t)))
            left -= len(t)
    torch.manual_seed(0)
    model = EmbeddingModel(build_model(load_config(model_name).model), precision=precision)
    before = peak_rss_mib()  # the model loaded and the file written
    started = time.perf_counter()
    embedding = model.embed(path)
    seconds = time.perf_counter() - started
    path.unlink()
    folder.rmdir()
    return {"minutes": minutes, "model": model_name, "precision": precision, "wall_s": round(seconds, 1),
            "x_rt": round(60 * minutes / seconds, 1), "peak_rss_mib": round(peak_rss_mib()),
            "rss_model_mib": round(before), "retained": retained, "chunk_s": model.whole_seconds,
            "dim": int(embedding.shape[0])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="thin_resnet34_ghostvlad")
    parser.add_argument("--minutes", nargs="+", type=float, default=[1.0, 60.0])
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--release-memory", action="store_true", help="let malloc hand freed memory back to the OS")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.model, args.minutes[0], args.precision, args.release_memory)))
        return 0
    print("| recording | model | precision | malloc keeps freed memory | peak RSS | peak RSS before embedding "
          "| wall | x RT |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for minutes in args.minutes:
        done = subprocess.run([sys.executable, __file__, "--child", "--model", args.model, "--minutes", str(minutes),
                               "--precision", args.precision, *(["--release-memory"] if args.release_memory else [])],
                              capture_output=True, text=True, check=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"| {r['minutes']:g} min | {r['model']} | {r['precision']} | {r['retained']} | {r['peak_rss_mib']} MiB | "
              f"{r['rss_model_mib']} MiB | {r['wall_s']} s | {r['x_rt']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
