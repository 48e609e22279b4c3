"""A client that knows only ``/openapi.json``: it finds operations by operationId, authenticates as
the security schemes say, builds uploads from the request-body schemas, follows the declared links,
and checks every answer against the documented statuses and schemas. Nothing here knows the
server's code: what it needs from the service, the schema has to say.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from helpers_api import make_checkpoint
from helpers_serve import KEY, Server, wav_bytes


class SchemaClient:
    """Calls operations by ``operationId`` using nothing but the service's OpenAPI document."""

    def __init__(self, base_url: str, key: str):
        self.http = httpx.Client(base_url=base_url, timeout=30)
        self.document = self.http.get("/openapi.json").raise_for_status().json()
        self.schema = schemathesis.openapi.from_dict(self.document)
        self.key = key
        self.operations = {op["operationId"]: (method, path, op)
                           for path, item in self.document["paths"].items() for method, op in item.items()}

    def _resolved(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target = self.document
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    def _credentials(self, operation: dict[str, Any]) -> dict[str, str]:
        """Headers for the first security alternative this client can satisfy (none when public)."""
        requirements = operation.get("security", self.document.get("security", []))
        schemes = self.document.get("components", {}).get("securitySchemes", {})
        for requirement in requirements:
            headers = {}
            for name in requirement:
                scheme = schemes[name]
                if scheme["type"] == "http" and scheme["scheme"].lower() == "bearer":
                    headers["Authorization"] = f"Bearer {self.key}"
                elif scheme["type"] == "apiKey" and scheme["in"] == "header":
                    headers[scheme["name"]] = self.key
            if len(headers) == len(requirement):
                return headers
        assert not requirements, f"no security alternative this client can satisfy: {requirements}"
        return {}

    def _files(self, operation: dict[str, Any], recordings: list[bytes]) -> list[tuple[str, tuple[str, bytes]]]:
        """The multipart parts: every recording into the binary field (an array field takes them all)."""
        body = self._resolved(operation["requestBody"]["content"]["multipart/form-data"]["schema"])
        for field in body.get("required", []):
            declared = self._resolved(body["properties"][field])
            many = declared.get("type") == "array"
            if (declared["items"] if many else declared).get("format") == "binary":
                assert many or len(recordings) == 1, f"{field} takes one recording"
                return [(field, (f"take{i}.wav", data)) for i, data in enumerate(recordings)]
        raise AssertionError(f"no binary field in {body}")

    def call(self, operation_id: str, recordings: list[bytes] | None = None, **parameters: Any) -> httpx.Response:
        """Send ``operation_id`` with path and query ``parameters``; check the answer against the schema."""
        method, path, operation = self.operations[operation_id]
        declared = {p["name"]: p for p in operation.get("parameters", [])}
        assert set(parameters) <= set(declared), f"{operation_id} declares {sorted(declared)}"
        url, query = path, {}
        for name, value in parameters.items():
            schema = declared[name]["schema"]
            if "pattern" in schema:
                assert re.search(schema["pattern"], str(value)), f"{value!r} breaks {name}'s declared pattern"
            if declared[name]["in"] == "path":
                url = url.replace(f"{{{name}}}", quote(str(value), safe=""))
            else:
                query[name] = value
        files = self._files(operation, recordings) if recordings is not None else None
        response = self.http.request(method.upper(), url, params=query, files=files,
                                     headers=self._credentials(operation))
        assert str(response.status_code) in operation["responses"], f"{response.status_code} is undocumented"
        response.request.read()  # a multipart upload is streamed; the validator reads the request too
        self.schema.find_operation_by_id(operation_id).validate_response(response)
        return response

    def follow(self, source: str, response: httpx.Response, link: str,
               recordings: list[bytes] | None = None) -> httpx.Response:
        """Follow the link ``link`` declared on ``source``'s answer, its parameters read from ``response``."""
        declared = self.operations[source][2]["responses"][str(response.status_code)]["links"][link]
        parameters = {name: _runtime_value(expression, response)
                      for name, expression in declared.get("parameters", {}).items()}
        return self.call(declared["operationId"], recordings, **parameters)

    def close(self) -> None:
        self.http.close()


def _runtime_value(expression: str, response: httpx.Response) -> Any:
    """``$response.body#/a/0/b``: a JSON pointer into the answer's body."""
    assert expression.startswith("$response.body#"), f"this client reads only body expressions: {expression}"
    value = response.json()
    for part in filter(None, expression.removeprefix("$response.body#").split("/")):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SchemaClient]:
    root: Path = tmp_path_factory.mktemp("client")
    server = Server(make_checkpoint(root / "model.pt"), root / "voices.db", root / "server.log",
                    "--threshold", "0.9999", "--threads", "1").start()
    schema_client = SchemaClient(server.url, KEY)
    yield schema_client
    schema_client.close()
    server.stop()


def test_enroll_verify_identify_delete_from_the_schema_alone(client: SchemaClient) -> None:
    carol = wav_bytes(3)  # an untrained model: only the enrolled recording itself scores above 0.9999
    assert client.call("health").json()["status"] == "ok"
    enrolled = client.call("enroll_speaker", [carol, carol], speaker_id="carol@example.org")
    assert enrolled.status_code == 200 and enrolled.json()["recordings"] == 2

    verified = client.follow("enroll_speaker", enrolled, "verify", [carol])
    assert verified.status_code == 200 and verified.json()["accepted"] is True
    stranger = client.follow("enroll_speaker", enrolled, "verify", [wav_bytes(6)])
    assert stranger.status_code == 200 and stranger.json()["accepted"] is False

    identified = client.follow("verify_speaker", verified, "identify", [carol])
    assert identified.status_code == 200 and identified.json()["best"] == "carol@example.org"

    deleted = client.follow("identify_speaker", identified, "delete")
    assert deleted.status_code == 200 and deleted.json()["recordings"] == 2
    gone = client.follow("delete_speaker", deleted, "verify", [carol])
    assert gone.status_code == 404 and gone.json()["error"] == "unknown_speaker"
    assert client.call("list_speakers").json() == {"speakers": []}


def test_errors_are_the_documented_model(client: SchemaClient) -> None:
    """Each answer below is checked by ``call`` against the status and schema the operation declares."""
    codes = set(client.document["components"]["schemas"]["ErrorCode"]["enum"])
    for response, status in [(client.call("identify_speaker", [b"not audio"]), 400),
                             (client.call("verify_speaker", [wav_bytes(1)], speaker_id="nobody"), 404),
                             (client.call("identify_speaker", [wav_bytes(1)], top_k=0), 422)]:
        assert response.status_code == status and response.json()["error"] in codes
    keyless = SchemaClient(str(client.http.base_url).rstrip("/"), key="wrong-key-0000000000")
    try:
        refused = keyless.call("list_speakers")
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    finally:
        keyless.close()
