"""``speakervlad serve``: the HTTP enrollment/verification service (see speakervlad.serve)."""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import torch

from ..embedding.torch_embedder import retain_freed_memory
from ..errors import ConfigError
from ..serve import API_KEY_ENV, create_app, load_api_key
from ..verification.quality import SpeechGate
from ..verification.store import EnrollmentStore
from ..verification.verifier import Verifier
from .speech_args import add_vad_args, vad_from_args

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve enroll/verify/identify over HTTP (API key required)",
        description=f"HTTP service with an OpenAPI schema at /docs. The API key comes from "
        f"${API_KEY_ENV} or --api-key-file; clients send it as 'Authorization: Bearer KEY' or "
        "'X-API-Key: KEY'.",
    )
    parser.add_argument("--model", required=True, type=Path, help="model checkpoint (.pt)")
    parser.add_argument("--db", required=True, type=Path, help="enrollment store (created if absent)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: localhost only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key-file", help=f"file holding the API key (instead of ${API_KEY_ENV})")
    parser.add_argument("--insecure-no-auth", action="store_true",
                        help="serve without an API key (loopback only; for local tests)")
    parser.add_argument("--max-upload-mb", type=float, default=20.0, help="request body limit (413 above)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="audio duration limit per file")
    parser.add_argument("--threads", type=int, help="torch threads for inference (default: torch's choice)")
    add_vad_args(parser, default=True)
    gate = SpeechGate()
    parser.add_argument("--min-enroll-speech", type=float, default=gate.enroll_seconds, metavar="S",
                        help=f"refuse (422) enrolling a recording with less speech (default {gate.enroll_seconds:g} s)")
    parser.add_argument("--min-test-speech", type=float, default=gate.test_seconds, metavar="S",
                        help=f"refuse (422) verify and identify with less speech (default {gate.test_seconds:g} s)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--threshold", type=float, help="explicit score threshold")
    group.add_argument("--far", type=float, help="target false-accept rate (calibrated model)")
    group.add_argument("--prior", type=float, help="target prior for the Bayes threshold (calibrated model)")
    parser.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    api_key = load_api_key(args.api_key_file, dict(os.environ), args.insecure_no_auth, args.host)
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    retain_freed_memory()  # a long-running process: reuse activation memory instead of faulting it in per request
    store = EnrollmentStore(args.db)
    store.create_now()  # an unwritable --db fails here, not at the first enrollment
    verifier = Verifier.from_checkpoint(args.model, store=store, threshold=args.threshold,
                                        far=args.far, prior=args.prior, vad=vad_from_args(args),
                                        gate=SpeechGate(args.min_enroll_speech, args.min_test_speech))
    app = create_app(verifier, api_key, max_upload_mb=args.max_upload_mb, max_seconds=args.max_seconds)
    logger.info("serving %s with store %s on http://%s:%d (docs at /docs)", args.model, args.db,
                args.host, args.port)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", server_header=False)
    return 0
