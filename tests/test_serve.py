"""The HTTP service, started as a real server on a loopback port and spoken to over HTTP."""
from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from conftest import speech
from helpers_api import RATE, make_checkpoint
from helpers_serve import AUTH, KEY, Server, encode, wav_bytes

from speakervlad.cli.main import main


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("serve")
    model = make_checkpoint(root / "model.pt")
    running = Server(model, root / "voices.db", root / "server.log",
                     "--threshold", "0.9999", "--max-upload-mb", "1", "--max-seconds", "3",
                     "--threads", "1").start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as http:
        yield http


def enroll(client: httpx.Client, speaker_id: str, *files: bytes) -> httpx.Response:
    return client.post(f"/speakers/{speaker_id}/enroll",
                       files=[("files", (f"take{i}.wav", data, "audio/wav")) for i, data in enumerate(files)])


def test_health_needs_no_key_and_reports_the_policy(server: Server) -> None:
    body = httpx.get(f"{server.url}/health").json()
    assert body["status"] == "ok" and body["calibrated"] is False
    assert body["threshold_source"] == "explicit threshold"


def test_every_other_endpoint_needs_the_key(server: Server) -> None:
    for method, path in [("GET", "/speakers"), ("POST", "/identify"), ("DELETE", "/speakers/a"),
                         ("POST", "/speakers/a/verify"), ("POST", "/speakers/a/enroll")]:
        for headers in [{}, {"Authorization": "Bearer wrong-key-000000000000"}, {"X-API-Key": KEY[:-1]},
                        {"Authorization": KEY}]:
            response = httpx.request(method, f"{server.url}{path}", headers=headers)
            assert response.status_code == 401, (method, path, headers)
            assert response.json()["error"] == "unauthorized"
            assert response.headers["www-authenticate"] == "Bearer"
    for headers in [AUTH, {"X-API-Key": KEY}, {"authorization": f"bearer {KEY}"}]:
        assert httpx.get(f"{server.url}/speakers", headers=headers).status_code == 200


def test_openapi_schema_documents_auth(server: Server) -> None:
    schema = httpx.get(f"{server.url}/openapi.json").json()
    assert {"/health", "/speakers", "/speakers/{speaker_id}/enroll", "/speakers/{speaker_id}/verify",
            "/identify", "/speakers/{speaker_id}"} <= set(schema["paths"])
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert schema["paths"]["/health"]["get"]["security"] == []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            errors = {status: answer for status, answer in operation["responses"].items() if status >= "400"}
            for answer in errors.values():
                assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
            if path != "/health":
                assert operation["security"] == [{"bearer": []}, {"apiKey": []}], (method, path)
                assert {"401", "500", "503"} <= set(errors), (method, path)


def test_enroll_verify_identify_delete(client: httpx.Client) -> None:
    alice = wav_bytes(1)
    response = enroll(client, "alice", alice)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert {k: answer[k] for k in ("speaker_id", "added", "recordings")} == {
        "speaker_id": "alice", "added": 1, "recordings": 1}
    [added] = answer["added_recordings"]
    assert added["label"] == "take0.wav" and added["seconds"] == 3.0 and 2.0 <= added["speech_seconds"] <= 3.0
    assert added["ghost_mass"] is None
    assert enroll(client, "bob", wav_bytes(2, take=0), wav_bytes(2, take=1)).json()["recordings"] == 2
    speakers = {s["speaker_id"]: s for s in client.get("/speakers").json()["speakers"]}
    assert speakers["alice"]["recordings"] == 1 and speakers["bob"]["recordings"] == 2

    same = client.post("/speakers/alice/verify", files={"file": ("a.wav", alice)}).json()
    assert same["accepted"] is True and same["score"] == pytest.approx(1.0, abs=1e-5)
    assert same["speech_seconds"] == added["speech_seconds"] and same["ghost_mass"] is None
    assert same["llr"] is None and same["threshold"] == 0.9999
    other = client.post("/speakers/alice/verify", files={"file": ("b.wav", wav_bytes(2))}).json()
    assert other["accepted"] is False and other["score"] < 0.9999

    found = client.post("/identify", files={"file": ("a.wav", alice)}, params={"top_k": 1}).json()
    assert found["best"] == "alice" and [c["speaker_id"] for c in found["candidates"]] == ["alice"]
    stranger = client.post("/identify", files={"file": ("c.wav", wav_bytes(5))}).json()
    assert stranger["best"] == "unknown" and len(stranger["candidates"]) == 2

    assert client.delete("/speakers/bob").json() == {"removed": "bob", "recordings": 2}
    assert "bob" not in {s["speaker_id"] for s in client.get("/speakers").json()["speakers"]}


def test_too_little_speech_is_422_and_nothing_is_stored(client: httpx.Client) -> None:
    noise = encode(0.05 * np.random.default_rng(0).standard_normal(3 * RATE).astype(np.float32))
    for files in ([noise], [wav_bytes(4), noise]):  # one recording without speech stores none of them
        refused = enroll(client, "nora", *files)
        assert (refused.status_code, refused.json()["error"]) == (422, "insufficient_speech"), refused.text
        assert f"take{len(files) - 1}.wav: 0.00 s of speech found, enrollment needs at least 2.00 s" in (
            refused.json()["detail"])
    assert "nora" not in {s["speaker_id"] for s in client.get("/speakers").json()["speakers"]}
    assert enroll(client, "nina", wav_bytes(4)).status_code == 200
    short = encode(np.concatenate([speech(0.6, speaker=4), np.zeros(2 * RATE, np.float32)]))
    for response in (client.post("/speakers/nina/verify", files={"file": ("short.wav", short)}),
                     client.post("/identify", files={"file": ("short.wav", short)})):
        assert (response.status_code, response.json()["error"]) == (422, "insufficient_speech"), response.text
        assert "short.wav: 0." in response.json()["detail"] and "needs at least 1.00 s" in response.json()["detail"]
    schema = client.get("/openapi.json").json()
    for path, method in [("/speakers/{speaker_id}/enroll", "post"), ("/speakers/{speaker_id}/verify", "post"),
                         ("/identify", "post")]:
        assert "`insufficient_speech`" in schema["paths"][path][method]["responses"]["422"]["description"]


def test_unknown_speaker_is_404(client: httpx.Client) -> None:
    response = client.post("/speakers/nobody/verify", files={"file": ("x.wav", wav_bytes(1))})
    assert response.status_code == 404 and response.json()["error"] == "unknown_speaker"
    assert "not enrolled" in response.json()["detail"]
    assert client.delete("/speakers/nobody").status_code == 404


def test_bad_input_is_4xx_with_json(client: httpx.Client) -> None:
    cases = [
        (client.post("/identify", files={"file": ("x.wav", b"RIFF nonsense" * 50)}), 400, "bad_audio"),
        (client.post("/identify", files={"file": ("x.wav", b"")}), 400, "bad_audio"),
        (client.post("/identify", files={"file": ("s.wav", _silence())}), 400, "bad_audio"),
        (client.post("/identify"), 422, "invalid_request"),
        (client.post("/identify", params={"top_k": 0}, files={"file": ("x.wav", wav_bytes(1))}),
         422, "invalid_request"),
        (enroll(client, ".hidden", wav_bytes(1)), 422, "invalid_speaker_id"),
        (enroll(client, "unknown", wav_bytes(1)), 422, "invalid_speaker_id"),
        (client.get("/no/such/path"), 404, "not_found"),
        (client.put("/speakers"), 405, "method_not_allowed"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json()["error"]) == (status, code), response.text
    bad = client.post("/speakers/alice2/enroll", files=[("files", ("ok.wav", wav_bytes(1))),
                                                        ("files", ("bad.wav", b"garbage"))])
    assert bad.status_code == 400 and "bad.wav" in bad.json()["detail"]
    assert "alice2" not in {s["speaker_id"] for s in client.get("/speakers").json()["speakers"]}


def test_requests_the_schema_forbids_are_refused_as_it_says(client: httpx.Client) -> None:
    """Where the schema and a lenient parser would disagree, the service follows the schema."""
    one = {"file": ("x.wav", wav_bytes(1))}
    cases = [  # an id that is empty or holds a '/' breaks the id rule like any other
        (client.post("/speakers//verify", files=one), 422, "invalid_speaker_id"),
        (client.post("/speakers/a%2Fb/verify", files=one), 422, "invalid_speaker_id"),
        (client.post("/speakers/a%2Fb/enroll", files=[("files", one["file"])]), 422, "invalid_speaker_id"),
        (client.delete("/speakers/alice/enroll"), 405, "method_not_allowed"),  # that path takes POST
        # query values as the schema spells them, not as pydantic would also read them
        (client.post("/identify", params={"top_k": "5_0"}, files=one), 422, "invalid_request"),
        (client.post("/identify", params={"top_k": "+5"}, files=one), 422, "invalid_request"),
        (client.post("/speakers/dave/enroll", params={"replace": "yes"}, files=[("files", one["file"])]),
         422, "invalid_request"),
        # a recording must be a file part (with a filename), as the schema's encoding says
        (client.post("/identify", files={"file": (None, b"RIFF")}), 422, "invalid_request"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json()["error"]) == (status, code), response.text
        assert isinstance(response.json()["detail"], str)
    # form fields the schema does not name are ignored
    extra = client.post("/identify", params={"top_k": "1"}, files=one, data={"note": "hello", "files": "x"})
    assert extra.status_code == 200, extra.text


def test_limits_are_413(client: httpx.Client) -> None:
    big = client.post("/identify", files={"file": ("big.wav", b"\0" * (1024 * 1024 + 10))})
    assert big.status_code == 413 and big.json()["error"] == "too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server must count
        yield b"--xx\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n"
        for _ in range(40):
            yield b"\0" * 65536

    streamed = client.post("/identify", content=chunks(),
                           headers={"Content-Type": "multipart/form-data; boundary=xx"})
    assert streamed.status_code == 413 and streamed.json()["error"] == "too_large"
    long = client.post("/identify", files={"file": ("long.wav", wav_bytes(1, seconds=4.0))})
    assert long.status_code == 413 and long.json()["error"] == "too_long"
    assert "at most 3 s" in long.json()["detail"]


def test_restart_keeps_speakers(server: Server, client: httpx.Client) -> None:
    assert enroll(client, "carol", wav_bytes(3)).status_code == 200
    server.stop()
    server.start()
    with httpx.Client(base_url=server.url, headers={"X-API-Key": KEY}, timeout=30) as fresh:
        assert "carol" in {s["speaker_id"] for s in fresh.get("/speakers").json()["speakers"]}
        decision = fresh.post("/speakers/carol/verify", files={"file": ("c.wav", wav_bytes(3))}).json()
        assert decision["accepted"] is True


def test_refuses_to_start_without_a_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture) -> None:
    monkeypatch.delenv("SPEAKERVLAD_API_KEY", raising=False)
    base = ["serve", "--model", str(tmp_path / "m.pt"), "--db", str(tmp_path / "v.db")]
    assert main(base) == 2
    assert "refusing to start without an API key" in capsys.readouterr().err
    assert main([*base, "--insecure-no-auth", "--host", "0.0.0.0"]) == 2
    assert "only allowed on 127.0.0.1" in capsys.readouterr().err
    monkeypatch.setenv("SPEAKERVLAD_API_KEY", "short")
    assert main(base) == 2
    assert "at least 16" in capsys.readouterr().err
    (tmp_path / "key").write_text("")
    assert main([*base, "--api-key-file", str(tmp_path / "key")]) == 2
    assert "refusing to start" in capsys.readouterr().err


def test_refuses_an_uncalibrated_model_without_threshold(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEAKERVLAD_API_KEY", KEY)
    model = make_checkpoint(tmp_path / "m.pt")
    assert main(["serve", "--model", str(model), "--db", str(tmp_path / "v.db")]) == 2
    assert "--threshold" in capsys.readouterr().err


def _silence() -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(RATE, dtype=np.float32), RATE, format="WAV")
    return buffer.getvalue()


def test_locked_store_is_503_and_nothing_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer holding the database past the busy timeout: 503 with Retry-After, then success."""
    import asyncio
    import sqlite3

    from speakervlad.serve import create_app
    from speakervlad.verification import store as store_module
    from speakervlad.verification.store import EnrollmentStore
    from speakervlad.verification.verifier import Verifier

    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 100)
    db = tmp_path / "voices.db"
    verifier = Verifier.from_checkpoint(make_checkpoint(tmp_path / "model.pt"), store=EnrollmentStore(db),
                                        threshold=0.5)
    transport = httpx.ASGITransport(app=create_app(verifier, api_key=None))

    async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response, set[str]]:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as app:
            def enroll_one(speaker_id: str, speaker: int):
                return app.post(f"/speakers/{speaker_id}/enroll", files=[("files", ("a.wav", wav_bytes(speaker)))])

            first = await enroll_one("alice", 1)
            other = sqlite3.connect(db, isolation_level=None)
            other.execute("BEGIN EXCLUSIVE")  # another process writing, for longer than the busy timeout
            locked = await enroll_one("bob", 2)
            other.execute("ROLLBACK")
            other.close()
            again = await enroll_one("bob", 2)  # the same request, sent again
            speakers = (await app.get("/speakers")).json()["speakers"]
            return first, locked, again, {s["speaker_id"] for s in speakers}

    first, locked, again, speakers = asyncio.run(scenario())
    assert first.status_code == 200 and again.status_code == 200
    assert locked.status_code == 503 and locked.headers["Retry-After"] == "1"
    assert locked.json()["error"] == "store_unavailable" and "nothing was changed" in locked.json()["detail"]
    assert speakers == {"alice", "bob"}
