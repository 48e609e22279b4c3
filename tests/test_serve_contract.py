"""The published contract is the one the service keeps: the schemathesis CLI, every check and
every phase (stateful included), against a real ``speakervlad serve``, with and without the key.

A fixed seed and a bounded number of examples keep it deterministic and short. The hooks
(tests/schemathesis_hooks.py) make the upload fields real recordings, as a client would send.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers_api import make_checkpoint
from helpers_serve import KEY, Server

HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
SEED = 20261201


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("contract")
    running = Server(make_checkpoint(root / "model.pt"), root / "voices.db", root / "server.log",
                     "--threshold", "0.5", "--max-upload-mb", "1", "--max-seconds", "3", "--threads", "1").start()
    yield running
    running.stop()


def fuzz(server: Server, report_dir: Path, max_examples: int, *headers: str) -> tuple[dict, list[dict]]:
    """``schemathesis run URL/openapi.json --checks all`` with ``headers``; its JSON report and events."""
    command = [sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/openapi.json", "--checks", "all",
               "--seed", str(SEED), "--max-examples", str(max_examples), "--workers", "1",
               "--generation-database", "none", "--report", "json,ndjson", "--report-dir", str(report_dir),
               *headers]
    done = subprocess.run(command, env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)}, cwd=report_dir,
                          capture_output=True, text=True, timeout=300, check=False)  # its cache stays in tmp
    report = json.loads(next(report_dir.glob("*.json")).read_text())
    assert report["complete"] and report["failures"] == [] and report["errors"] == [], done.stdout[-6000:]
    assert done.returncode == 0, done.stdout[-6000:]
    assert {name: phase["status"] for name, phase in report["phases"].items()} == {
        "examples": "success", "coverage": "success", "fuzzing": "success", "stateful": "success"}
    events = [json.loads(line) for line in next(report_dir.glob("*.ndjson")).read_text().splitlines()]
    return report, events


def followed_links(events: list[dict]) -> dict[str, set[int]]:
    """The links the stateful phase followed (``POST /identify -> delete``) and the statuses they led to."""
    followed: dict[str, set[int]] = {}
    for event in events:
        recorder = event.get("ScenarioFinished", {}).get("recorder", {})
        for case_id, case in recorder.get("cases", {}).items():
            if "transition" in case and case_id in recorder["interactions"]:
                source, link = re.match(r"(\S+ \S+) -> \[\d+\] (\w+)", case["transition"]["id"]).groups()
                status = recorder["interactions"][case_id]["response"]["status_code"]
                followed.setdefault(f"{source} -> {link}", set()).add(status)
    return followed


def test_fuzzer_finds_nothing_with_the_key(server: Server, tmp_path: Path) -> None:
    report, events = fuzz(server, tmp_path, 8, "-H", f"Authorization: Bearer {KEY}")
    assert report["operations"]["tested"] == 6
    links = followed_links(events)
    # speakers enrolled, then verified, identified and deleted through links the schema declares
    assert any(link.startswith("POST /speakers/{speaker_id}/enroll -> ") for link in links), sorted(links)
    for target in ("verify", "identify", "delete"):
        reached = set().union(*(statuses for link, statuses in links.items() if link.endswith(f" -> {target}")))
        assert 200 in reached, (target, links)
    log = server.log.read_text()
    for request in ('POST /speakers/[^ ]+/enroll[^"]* HTTP/1.1" 200', 'POST /speakers/[^ ]+/verify HTTP/1.1" 200',
                    'POST /identify[^"]* HTTP/1.1" 200', 'DELETE /speakers/[^ ]+ HTTP/1.1" 200'):
        assert re.search(request, log), request


def test_fuzzer_finds_nothing_without_the_key(server: Server, tmp_path: Path) -> None:
    already = len(server.log.read_text().splitlines())
    report, _ = fuzz(server, tmp_path, 3)  # every answer is the same 401: fewer examples say as much
    assert report["test_cases"]["generated"] > 50
    answers = [re.search(r'"(\S+) (/[^ ?]*)\S* HTTP/1.1" (\d+)', line)
               for line in server.log.read_text().splitlines()[already:]]
    statuses = {(m[2], int(m[3])) for m in answers if m and m[2] not in ("/health", "/openapi.json")}
    assert statuses and {status for _, status in statuses} == {401}, sorted(statuses)
