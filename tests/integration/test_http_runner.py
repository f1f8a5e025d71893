"""The http runner against real HTTP servers on loopback, and through the worker on real PostgreSQL and moto.

Each test runs a `ThreadingHTTPServer` on 127.0.0.1 that records what it
was sent. Loopback is internal, so the tests that must reach it turn on
`ATTUNE_HTTP_ALLOW_PRIVATE` (or allow-list the one host), and the SSRF tests
turn it off and check that the server saw nothing.
"""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chalicelib.config import settings
from chalicelib.core.runners import ActionSpec
from chalicelib.db.pool import system_tx
from chalicelib.local.sqs_poller import to_record
from chalicelib.runners.base import RunRequest, RunResult
from chalicelib.runners.http import HttpRunner
from tests.helpers.api import ApiUser, register
from tests.integration.conftest_aws import eventually

pytestmark = pytest.mark.integration

ARN = "arn:aws:sqs:us-east-1:123456789012:attune-work"
API_TOKEN = "tok-3f9a1c77e2"  # a test secret, checked to be masked


class QuietServer(ThreadingHTTPServer):
    """A client the runner hung up on (timeout, cancel, a refused certificate) is expected, not news."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@dataclass
class Seen:
    """One request as the server got it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class MockServer:
    """A real HTTP server on loopback; `routes` maps a path to (status, headers, body) or a special action."""

    server: ThreadingHTTPServer
    seen: list[Seen] = field(default_factory=list)
    routes: dict[str, Any] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Event = field(default_factory=threading.Event)
    sni: list[str | None] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        scheme = "https" if isinstance(self.server.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://{host}:{self.port}{path}"


def _handler(mock: MockServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            mock.seen.append(Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            mock.arrived.set()
            route = mock.routes.get(self.path.split("?")[0], "echo")
            if route == "stall":
                mock.release.wait(30)  # until the test ends: only the runner's timeout or cancel ends the wait
                return
            if route == "echo":
                status, headers = 200, {"Content-Type": "application/json", "X-Mock": "yes"}
                payload = json.dumps({"method": self.command, "path": self.path, "body": body.decode() or None,
                                      "authorization": self.headers.get("Authorization"),
                                      "host": self.headers.get("Host")}).encode()
            else:
                status, headers, payload = route
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def mock_server() -> Iterator[MockServer]:
    """An HTTP server on 127.0.0.1 on a free port, stopped after the test."""
    mock = MockServer(QuietServer(("127.0.0.1", 0), BaseHTTPRequestHandler))
    mock.server.RequestHandlerClass = _handler(mock)
    thread = threading.Thread(target=mock.server.serve_forever, daemon=True)
    thread.start()
    yield mock
    mock.release.set()
    mock.server.shutdown()
    mock.server.server_close()


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def tls_server(mock_server: MockServer, tmp_path: Path) -> MockServer:
    """The same server, speaking TLS with a self-signed certificate for `localhost`; records the SNI."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*_self_signed(tmp_path))

    def record_sni(sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, ctx: ssl.SSLContext) -> None:
        mock_server.sni.append(name)

    context.sni_callback = record_sni
    mock_server.server.socket = context.wrap_socket(mock_server.server.socket, server_side=True)
    return mock_server


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Set ATTUNE_HTTP_ALLOW_* per test (default: no allowance); settings are re-read either way."""
    monkeypatch.delenv("ATTUNE_HTTP_ALLOW_PRIVATE", raising=False)
    monkeypatch.delenv("ATTUNE_HTTP_ALLOW_HOSTS", raising=False)
    settings.cache_clear()
    yield monkeypatch
    monkeypatch.delenv("ATTUNE_HTTP_ALLOW_PRIVATE", raising=False)
    monkeypatch.delenv("ATTUNE_HTTP_ALLOW_HOSTS", raising=False)
    settings.cache_clear()


@pytest.fixture
def allow_private(network: pytest.MonkeyPatch) -> None:
    network.setenv("ATTUNE_HTTP_ALLOW_PRIVATE", "true")
    settings.cache_clear()


def run(http_config: dict[str, Any], parameters: dict[str, Any] | None = None, *, timeout_s: float = 10,
        cancel: threading.Event | None = None, max_output_bytes: int = 1024 * 1024) -> RunResult:
    spec = ActionSpec("ops.call", "http", http_config=http_config)
    req = RunRequest(execution_id=1, runner_type="http", parameters=parameters or {}, timeout_s=timeout_s,
                     max_output_bytes=max_output_bytes, spec=spec)
    return HttpRunner().run(req, cancel=cancel)


# -- the runner alone ---------------------------------------------------------------------
def test_get_captures_status_headers_and_json_body(allow_private: None, mock_server: MockServer) -> None:
    result = run({"url": mock_server.url("/users/{{ params.id }}?full=1")}, {"id": 42})
    assert result.status == "succeeded", result
    assert result.output["status_code"] == 200
    assert result.output["headers"]["x-mock"] == "yes"
    assert result.output["body"]["method"] == "GET" and result.output["body"]["path"] == "/users/42?full=1"
    assert [s.method for s in mock_server.seen] == ["GET"]


def test_post_sends_the_templated_json_body_and_headers(allow_private: None, mock_server: MockServer) -> None:
    config = {"url": mock_server.url("/users", host="localhost"), "method": "POST",
              "headers": {"Content-Type": "application/json", "X-Request": "{{ params.name }}-1"},
              "body": "{{ params | tojson }}"}
    result = run(config, {"name": "ada", "age": 36})
    assert result.status == "succeeded", result
    (seen,) = mock_server.seen
    assert seen.method == "POST" and json.loads(seen.body) == {"name": "ada", "age": 36}
    assert seen.headers["content-type"] == "application/json" and seen.headers["x-request"] == "ada-1"
    assert seen.headers["host"] == f"localhost:{mock_server.port}"  # the name, though we connected to the IP
    assert result.output["body"]["body"] == seen.body.decode()


def test_a_non_2xx_answer_fails_with_the_response_kept(allow_private: None, mock_server: MockServer) -> None:
    mock_server.routes["/missing"] = (404, {"Content-Type": "application/json"}, b'{"detail": "no such user"}')
    result = run({"url": mock_server.url("/missing"), "method": "DELETE"})
    assert result.status == "failed"
    assert result.error == f"HTTP 404 Not Found from DELETE {mock_server.url('/missing')}"
    assert result.output["status_code"] == 404 and result.output["body"] == {"detail": "no such user"}


def test_a_server_that_does_not_answer_times_out(allow_private: None, mock_server: MockServer) -> None:
    mock_server.routes["/slow"] = "stall"
    result = run({"url": mock_server.url("/slow")}, timeout_s=0.5)
    assert result.status == "failed" and result.timed_out is True
    assert result.error == f"timed out after 0.5s waiting for {mock_server.url('/slow')}"
    assert result.duration_s < 5


def test_http_config_timeout_is_the_request_timeout(allow_private: None, mock_server: MockServer) -> None:
    mock_server.routes["/slow"] = "stall"
    result = run({"url": mock_server.url("/slow"), "timeout": 1}, timeout_s=60)
    assert result.status == "failed" and result.timed_out is True and "timed out after 1s" in str(result.error)


def test_cancel_ends_a_request_in_flight(allow_private: None, mock_server: MockServer) -> None:
    mock_server.routes["/slow"] = "stall"
    cancel = threading.Event()
    results: list[RunResult] = []
    worker = threading.Thread(target=lambda: results.append(run({"url": mock_server.url("/slow")},
                                                                timeout_s=60, cancel=cancel)))
    worker.start()
    assert mock_server.arrived.wait(10), "the request never reached the server"
    cancel.set()
    worker.join(10)
    assert not worker.is_alive(), "cancel did not end the request"
    (result,) = results
    assert result.status == "canceled" and result.error == "canceled"


def test_connection_refused_fails_with_a_clear_message(allow_private: None) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run({"url": f"http://127.0.0.1:{port}/"})
    assert result.status == "failed" and result.timed_out is False
    assert result.error is not None and result.error.startswith(f"could not connect to 127.0.0.1:{port}")
    assert result.output is None


def test_a_big_body_is_cut_with_the_marker(allow_private: None, mock_server: MockServer) -> None:
    mock_server.routes["/big"] = (200, {"Content-Type": "text/plain"}, b"y" * 200_000)
    result = run({"url": mock_server.url("/big")}, max_output_bytes=1000)
    assert result.status == "succeeded"
    assert result.output["body"] == "y" * 1000 + "\n... (output truncated)" and result.output["truncated"] is True


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}/", "http://localhost:{port}/",
                                 "http://169.254.169.254/latest/meta-data/", "http://2130706433:{port}/"])
def test_internal_destinations_are_refused_without_the_allowance(
    network: pytest.MonkeyPatch, mock_server: MockServer, url: str
) -> None:
    result = run({"url": url.format(port=mock_server.port)}, timeout_s=5)
    assert result.status == "failed"
    assert result.error is not None and "refusing to contact" in result.error
    assert "ATTUNE_HTTP_ALLOW_PRIVATE" in result.error
    assert mock_server.seen == []


def test_a_redirect_to_a_forbidden_address_is_refused(network: pytest.MonkeyPatch, mock_server: MockServer) -> None:
    # GIVEN only the mock server's name is allowed, and it redirects to the same server by IP (not allowed)
    network.setenv("ATTUNE_HTTP_ALLOW_HOSTS", f"localhost:{mock_server.port}")
    settings.cache_clear()
    target = mock_server.url("/internal")
    mock_server.routes["/start"] = (302, {"Location": target}, b"")
    # WHEN the action calls the allowed name
    result = run({"url": mock_server.url("/start", host="localhost")})
    # THEN the first hop was made, the redirect refused before connecting
    assert result.status == "failed"
    assert result.error is not None and result.error.startswith(f"redirect to {target} refused: refusing to contact")
    assert [s.path for s in mock_server.seen] == ["/start"]


def test_allowed_redirects_are_followed(allow_private: None, mock_server: MockServer) -> None:
    mock_server.routes["/old"] = (301, {"Location": "/new"}, b"")
    result = run({"url": mock_server.url("/old")})
    assert result.status == "succeeded"
    assert [s.path for s in mock_server.seen] == ["/old", "/new"]
    assert result.output["url"] == mock_server.url("/new")


def test_tls_sends_the_name_as_sni_and_verifies_the_certificate(allow_private: None, tls_server: MockServer) -> None:
    # GIVEN a TLS server with a self-signed certificate for localhost
    url = tls_server.url("/secure", host="localhost")
    # WHEN verification is on, the self-signed certificate is refused
    refused = run({"url": url})
    assert refused.status == "failed"
    assert refused.error is not None and "CERTIFICATE_VERIFY_FAILED" in refused.error
    # AND with verify_ssl false the request goes through, the name sent as SNI to the pinned address
    allowed = run({"url": url, "verify_ssl": False})
    assert allowed.status == "succeeded", allowed
    assert allowed.output["body"]["host"] == f"localhost:{tls_server.port}"
    assert tls_server.sni and set(tls_server.sni) == {"localhost"}


# -- through the worker -------------------------------------------------------------------------
def _work_record(execution_id: int) -> dict[str, Any]:
    with system_tx() as cur:
        cur.execute(
            "SELECT id, body FROM attune.outbox WHERE queue = 'work' AND body->>'execution_id' = %s",
            (str(execution_id),),
        )
        row = cur.fetchone()
    assert row is not None, f"no work message for execution {execution_id}"
    message = {"MessageId": str(uuid.uuid4()), "ReceiptHandle": f"rh-{uuid.uuid4().hex}",
               "Body": json.dumps({**row["body"], "outbox_id": row["id"]})}
    return to_record(message, ARN, "us-east-1")


def _execute(user: ApiUser, action_ref: str, parameters: dict[str, Any]) -> dict[str, Any]:
    from functions.worker import app

    status, body = user.post("/api/v1/executions", {"action_ref": action_ref, "parameters": parameters})
    assert status == 201 and body["status"] == "scheduled", body
    execution_id = int(body["id"])
    assert app.handler({"Records": [_work_record(execution_id)]}, None) == {"batchItemFailures": []}

    def finished() -> dict[str, Any] | None:
        found = user.get(f"/api/v1/executions/{execution_id}")[1]
        return found if found["status"] in ("succeeded", "failed", "canceled") else None

    return eventually(finished, timeout=20, message=f"execution {execution_id} to finish")


def _http_action(user: ApiUser, http_config: dict[str, Any]) -> str:
    status, body = user.post("/api/v1/packs", {"ref": "ops", "version": "1.0.0", "files": {}})
    assert status == 201, body
    parameters = {"name": {"type": "string"}, "api_token": {"type": "string", "secret": True}}
    status, body = user.post("/api/v1/actions", {"ref": "ops.call", "runner_type": "http",
                                                 "http_config": http_config, "parameters": parameters})
    assert status == 201, body
    return "ops.call"


def test_a_secret_header_reaches_the_server_but_is_masked_in_the_stored_result(
    worker_env: None, api: Any, allow_private: None, mock_server: MockServer
) -> None:
    # GIVEN an http action sending its secret parameter as a bearer token (the server echoes it back)
    user = register(api, "http")
    ref = _http_action(user, {"url": mock_server.url("/hello"), "method": "POST",
                              "headers": {"Authorization": "Bearer {{ secret.api_token }}",
                                          "Content-Type": "application/json"},
                              "body": "{{ params | tojson }}"})
    # WHEN the worker runs it
    done = _execute(user, ref, {"name": "ada", "api_token": API_TOKEN})
    # THEN the server got the real token, and the body without it
    assert done["status"] == "succeeded", done
    (seen,) = mock_server.seen
    assert seen.headers["authorization"] == f"Bearer {API_TOKEN}"
    assert json.loads(seen.body) == {"name": "ada"}
    # AND the stored result has the response, with the token masked wherever it was echoed
    assert done["result"]["output"]["status_code"] == 200
    assert done["result"]["output"]["body"]["authorization"] == "Bearer ********"
    assert done["result"]["exit_code"] is None and done["result"]["error"] is None
    assert API_TOKEN not in json.dumps(done)


def test_a_datastore_value_is_templated_into_the_request(
    worker_env: None, api: Any, allow_private: None, mock_server: MockServer
) -> None:
    # GIVEN the tenant's datastore holds the API's base path (encrypted) and the action reads it
    user = register(api, "http")
    status, body = user.post("/api/v1/datastore", {"key": "api_base", "value": "v2", "encrypted": True})
    assert status == 201, body
    ref = _http_action(user, {"url": mock_server.url("/{{ datastore.api_base }}/users/{{ params.name }}"),
                              "headers": {"X-Missing": "{{ datastore.nope }}"}})
    # WHEN the worker runs it
    done = _execute(user, ref, {"name": "bob"})
    # THEN the request used the decrypted value, and a missing key rendered as nothing
    assert done["status"] == "succeeded", done
    (seen,) = mock_server.seen
    assert seen.path == "/v2/users/bob"
    assert "x-missing" not in seen.headers


def test_a_non_2xx_answer_through_the_worker_is_failed_with_the_response(
    worker_env: None, api: Any, allow_private: None, mock_server: MockServer
) -> None:
    user = register(api, "http")
    mock_server.routes["/boom"] = (503, {"Content-Type": "text/plain"}, b"try later")
    ref = _http_action(user, {"url": mock_server.url("/boom")})
    done = _execute(user, ref, {})
    assert done["status"] == "failed"
    assert done["result"]["error"] == f"HTTP 503 Service Unavailable from GET {mock_server.url('/boom')}"
    assert done["result"]["output"]["status_code"] == 503 and done["result"]["output"]["body"] == "try later"
