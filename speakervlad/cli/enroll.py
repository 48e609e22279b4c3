"""``speakervlad enroll | verify | identify | speakers``: the enrollment store from the shell.

Each recording's speech alone is embedded (``--no-vad``: the audio as it is), and recordings with
too little speech are refused (``--min-speech``: 2 s to enroll, 1 s to verify or identify).
Exit codes: 0 accepted / identified / done, 1 rejected / unknown speaker, 2 errors.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import StoreError
from ..verification.identifiers import UNKNOWN
from ..verification.quality import Purpose
from ..verification.store import EnrollmentStore
from ..verification.verifier import Decision, IdentifyResult, Verifier
from .speech_args import add_min_speech_arg, add_vad_args, describe_quality, gate_from_args, vad_from_args

EXIT_ACCEPTED, EXIT_REJECTED = 0, 1


def register(subparsers: argparse._SubParsersAction) -> None:
    enroll = subparsers.add_parser("enroll", help="enroll a speaker from one or more recordings")
    _model_args(enroll, "enroll", thresholds=False)
    enroll.add_argument("--speaker", required=True, help="speaker id (letters, digits, . _ - @)")
    enroll.add_argument("--replace", action="store_true",
                        help="drop the speaker's earlier recordings (e.g. to re-enroll with a new model)")
    enroll.add_argument("audio", nargs="+", type=Path, help="recordings of the speaker")
    enroll.set_defaults(func=run_enroll)

    verify = subparsers.add_parser(
        "verify", help="is AUDIO the enrolled --speaker? or: are two recordings the same speaker?",
        description="With --db and --speaker: verify one recording against an enrolled speaker. "
        "Without: compare two recordings. Exit 0 accepted, 1 rejected, 2 error.",
    )
    _model_args(verify, "verify", db_required=False)
    verify.add_argument("--speaker", help="enrolled speaker id (needs --db)")
    verify.add_argument("audio", nargs="+", type=Path, help="AUDIO (with --speaker) or A B")
    verify.set_defaults(func=run_verify)

    identify = subparsers.add_parser("identify", help="who among the enrolled speakers is this?")
    _model_args(identify, "identify")
    identify.add_argument("--top-k", type=int, default=5, help="candidates to list (default 5)")
    identify.add_argument("audio", type=Path)
    identify.set_defaults(func=run_identify)

    speakers = subparsers.add_parser("speakers", help="list, show or remove enrolled speakers")
    speakers.add_argument("--db", required=True, type=Path, help="enrollment store (SQLite file)")
    speakers.add_argument("--json", action="store_true", help="print JSON")
    speakers.add_argument("action", nargs="?", choices=["list", "show", "remove"], default="list",
                          help="show: a speaker's recordings, with their speech seconds and ghost mass")
    speakers.add_argument("speaker", nargs="?", help="speaker id (for show and remove)")
    speakers.set_defaults(func=run_speakers)


def _model_args(parser: argparse.ArgumentParser, purpose: Purpose, thresholds: bool = True,
                db_required: bool = True) -> None:
    parser.add_argument("--model", required=True, type=Path, help="model checkpoint (.pt)")
    parser.add_argument("--db", required=db_required, type=Path, help="enrollment store (SQLite file)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_vad_args(parser, default=True)
    add_min_speech_arg(parser, purpose)
    if thresholds:
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--threshold", type=float, help="explicit score threshold")
        group.add_argument("--far", type=float, help="target false-accept rate (needs a calibrated model)")
        group.add_argument("--prior", type=float, help="target prior for the Bayes threshold (calibrated)")


def open_store(path: Path, create: bool) -> EnrollmentStore:
    """Open ``path``; a missing file is an error unless ``create`` (a typo should not look empty)."""
    if not create and not path.exists():
        raise StoreError(f"{path}: no enrollment store there; enroll a speaker first "
                         f"(speakervlad enroll --db {path} ...)")
    return EnrollmentStore(path)


def run_enroll(args: argparse.Namespace) -> int:
    verifier = Verifier.from_checkpoint(args.model, store=open_store(args.db, create=True),
                                        vad=vad_from_args(args), gate=gate_from_args(args, "enroll"))
    done = verifier.enroll(args.speaker, list(args.audio), labels=[p.name for p in args.audio],
                           replace=args.replace)
    if args.json:
        print(json.dumps({"speaker_id": args.speaker, "added": len(args.audio), "recordings": done.recordings,
                          "added_recordings": [{"label": label, **q.to_dict()}
                                               for label, q in zip(done.labels, done.added)]}))
        return 0
    print(f"enrolled {args.speaker}: {len(args.audio)} recording(s) added, {done.recordings} in total")
    for label, quality in zip(done.labels, done.added):
        print(f"  {label}: {describe_quality(quality)}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    if args.speaker is not None:
        if args.db is None or len(args.audio) != 1:
            raise StoreError("verify --speaker ID needs --db and exactly one AUDIO")
        store = open_store(args.db, create=False)
    elif len(args.audio) != 2:
        raise StoreError("verify without --speaker compares exactly two recordings: A B")
    else:
        store = None
    verifier = _verifier(args, store)
    if args.speaker is not None:
        decision = verifier.verify(args.speaker, args.audio[0])
        subject = f"{args.audio[0]} is {args.speaker}"
    else:
        decision = verifier.compare(args.audio[0], args.audio[1])
        subject = f"{args.audio[0]} and {args.audio[1]} are the same speaker"
    print(json.dumps(decision.to_dict()) if args.json else format_decision(decision, subject))
    return EXIT_ACCEPTED if decision.accepted else EXIT_REJECTED


def run_identify(args: argparse.Namespace) -> int:
    verifier = _verifier(args, open_store(args.db, create=False))
    result = verifier.identify(args.audio, top_k=args.top_k)
    print(json.dumps(result.to_dict()) if args.json else format_identify(result))
    return EXIT_ACCEPTED if result.best != UNKNOWN else EXIT_REJECTED


def run_speakers(args: argparse.Namespace) -> int:
    store = open_store(args.db, create=False)
    if args.action == "show":
        if not args.speaker:
            raise StoreError("speakers show needs a speaker id: speakervlad speakers --db DB show ID")
        recordings = store.recordings(args.speaker)
        if args.json:
            print(json.dumps([{"label": r.label, "model": r.fingerprint, "created": r.created,
                               **r.quality.to_dict()} for r in recordings]))
            return 0
        print(f"{args.speaker}: {len(recordings)} recording(s)")
        for r in recordings:
            print(f"  {r.label:<32} {describe_quality(r.quality)}  model {r.fingerprint[:12]}")
        return 0
    if args.action == "remove":
        if not args.speaker:
            raise StoreError("speakers remove needs a speaker id: speakervlad speakers --db DB remove ID")
        gone = store.remove(args.speaker)
        print(json.dumps({"removed": args.speaker, "recordings": gone}) if args.json
              else f"removed {args.speaker} ({gone} recording(s))")
        return 0
    if args.speaker:
        raise StoreError(f"unexpected argument {args.speaker!r} after 'list'")
    infos = store.speakers()
    if args.json:
        print(json.dumps([{"speaker_id": i.speaker_id, "recordings": i.recordings,
                           "models": list(i.fingerprints)} for i in infos]))
        return 0
    print(f"{len(infos)} speaker(s) in {args.db}")
    for info in infos:
        models = ", ".join(fp[:12] for fp in info.fingerprints) or "-"
        print(f"  {info.speaker_id:<32} {info.recordings:>4} recording(s)  model {models}")
    return 0


def _verifier(args: argparse.Namespace, store: EnrollmentStore | None) -> Verifier:
    purpose = "identify" if args.command == "identify" else "verify"
    return Verifier.from_checkpoint(args.model, store=store, threshold=args.threshold, far=args.far,
                                    prior=args.prior, vad=vad_from_args(args), gate=gate_from_args(args, purpose))


def format_decision(decision: Decision, subject: str) -> str:
    verdict = "ACCEPTED" if decision.accepted else "REJECTED"
    relation = ">=" if decision.accepted else "<"
    llr = "uncalibrated" if decision.llr is None else f"LLR {decision.llr:+.3f}"
    return (f"{verdict}: {subject}? score {decision.score:.4f} ({llr}) {relation} threshold "
            f"{decision.threshold:.4f} [{decision.threshold_source}]; {_heard(decision)}")


def format_identify(result: IdentifyResult) -> str:
    lines = [f"best: {result.best}  (threshold {result.threshold:.4f} [{result.threshold_source}]; "
             f"{_heard(result)})"]
    if not result.candidates:
        lines.append("  no speakers enrolled with this model")
    for rank, cand in enumerate(result.candidates, 1):
        llr = "" if cand.llr is None else f"  LLR {cand.llr:+.3f}"
        lines.append(f"  {rank:>2}. {cand.speaker_id:<32} score {cand.score:.4f}{llr}")
    return "\n".join(lines)


def _heard(result: Decision | IdentifyResult) -> str:
    ghosts = "" if result.ghost_mass is None else f", ghost mass {result.ghost_mass:.3f}"
    return f"{result.speech_seconds:.2f} s of speech{ghosts}"
