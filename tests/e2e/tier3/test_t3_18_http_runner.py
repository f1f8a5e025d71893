"""T3.18 HTTP runner: an `http` action makes a templated REST call from the worker; the response is captured.

The seed's `api_call` action (POST, JSON content type, `Bearer {{ secret.api_token }}`,
body `{{ params | tojson }}`) is registered in a pack and run through
`POST /api/v1/executions` against a real HTTP server this test runs on
loopback, which records every request it gets. Checked: the method, the
headers (the secret token reaches the server, but not the API's view of the
execution), the body templated from the parameters (secrets not in it), the
status code and body in `result.output`, and errors handled gracefully: a 5xx
fails the execution with the response kept, an unreachable URL fails it with
a clear message.

Loopback is internal, so the cloud must run with ATTUNE_HTTP_ALLOW_PRIVATE=true
(the session's cloud gets it from `tests/e2e/conftest.py`, or from this
process's environment).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml

from tests.e2e.client import Cloud, User
from tests.e2e.flow import register_pack, run_action, unique_ref

API_TOKEN = "t318-token-8c41d2"  # a test secret, checked to be masked
API_CALL = {
    "name": "api_call",
    "runner_type": "http",
    "parameters": {
        "username": {"type": "string", "required": True},
        "age": {"type": "integer"},
        "api_token": {"type": "string", "secret": True, "required": True},
        "path": {"type": "string", "default": "/users"},
    },
    "http_config": {
        "method": "POST",
        "url": "{{ params.base_url }}{{ params.path }}",
        "headers": {"Content-Type": "application/json", "Authorization": "Bearer {{ secret.api_token }}"},
        "body": "{{ params | tojson }}",
    },
}


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class MockApi:
    """The REST API the action calls: `/users` answers 201 with JSON, `/broken` 503."""

    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


def _handler(api: MockApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            api.received.append(Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                                         body))
            if self.path == "/broken":
                status, payload = 503, {"error": "maintenance", "retry_after": 30}
            else:
                status, payload = 201, {"id": 1001, "created": json.loads(body or b"null"),
                                        "seen_authorization": self.headers.get("Authorization")}
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Request-Id", "req-318")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_GET = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def mock_api() -> Iterator[MockApi]:
    api = MockApi(ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler))
    api.server.RequestHandlerClass = _handler(api)
    threading.Thread(target=api.server.serve_forever, daemon=True).start()
    yield api
    api.server.shutdown()
    api.server.server_close()


def _api_call_action(user: User, base_url: str) -> str:
    """The seed's api_call action, in a new pack; `base_url` is a parameter so each test points it at its server."""
    spec = json.loads(json.dumps(API_CALL))
    spec["parameters"]["base_url"] = {"type": "string", "default": base_url}
    ref = unique_ref("t318")
    register_pack(user, ref, {"actions/api_call.yaml": yaml.safe_dump(spec, sort_keys=False)})
    return f"{ref}.api_call"


def _require_loopback_allowed(execution: dict[str, Any]) -> None:
    error = (execution.get("result") or {}).get("error") or ""
    if "refusing to contact" in error:
        pytest.fail("the cloud refuses loopback destinations: run it with ATTUNE_HTTP_ALLOW_PRIVATE=true "
                    f"(tests/e2e/conftest.py); error: {error}")


def test_http_action_posts_the_templated_request_and_captures_the_response(cloud: Cloud, mock_api: MockApi) -> None:
    # GIVEN the seed's api_call action (POST, JSON, bearer token from a secret parameter)
    user = cloud.register("t318")
    action_ref = _api_call_action(user, mock_api.base_url)

    # WHEN it is executed
    execution = run_action(user, action_ref, {"username": "ada", "age": 36, "api_token": API_TOKEN})
    _require_loopback_allowed(execution)

    # THEN the worker made exactly one request, with the right method, path and headers
    assert execution["status"] == "succeeded", execution
    (request,) = mock_api.received
    assert request.method == "POST" and request.path == "/users"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["authorization"] == f"Bearer {API_TOKEN}"
    # AND the body is the parameters, templated (`params | tojson`), without the secret
    assert json.loads(request.body) == {"username": "ada", "age": 36, "path": "/users",
                                        "base_url": mock_api.base_url}
    # AND the response's status code, headers and body are in the result
    output = execution["result"]["output"]
    assert output["status_code"] == 201
    assert output["headers"]["x-request-id"] == "req-318"
    assert output["body"]["id"] == 1001 and output["body"]["created"]["username"] == "ada"
    assert execution["result"]["exit_code"] is None and execution["result"]["error"] is None
    # AND the token, echoed by the server, is masked in the API's view of the execution
    assert output["body"]["seen_authorization"] == "Bearer ********"
    assert API_TOKEN not in json.dumps(execution)
    assert execution["parameters"]["api_token"] != API_TOKEN


def test_an_http_error_fails_the_execution_with_the_response_kept(cloud: Cloud, mock_api: MockApi) -> None:
    # GIVEN the action pointed at an endpoint that answers 503
    user = cloud.register("t318")
    action_ref = _api_call_action(user, mock_api.base_url)

    # WHEN it is executed
    execution = run_action(user, action_ref, {"username": "bob", "api_token": API_TOKEN, "path": "/broken"})
    _require_loopback_allowed(execution)

    # THEN it failed gracefully: an error naming the status, the response kept
    assert execution["status"] == "failed", execution
    assert execution["result"]["error"] == f"HTTP 503 Service Unavailable from POST {mock_api.base_url}/broken"
    output = execution["result"]["output"]
    assert output["status_code"] == 503 and output["body"] == {"error": "maintenance", "retry_after": 30}
    assert [r.path for r in mock_api.received] == ["/broken"]


def test_an_unreachable_url_fails_with_a_clear_message(cloud: Cloud) -> None:
    # GIVEN the action pointed at a port nothing listens on
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    user = cloud.register("t318")
    action_ref = _api_call_action(user, f"http://127.0.0.1:{port}")

    # WHEN it is executed
    execution = run_action(user, action_ref, {"username": "cy", "api_token": API_TOKEN})
    _require_loopback_allowed(execution)

    # THEN it failed with the connection error, no response
    assert execution["status"] == "failed", execution
    assert execution["result"]["error"].startswith(f"could not connect to 127.0.0.1:{port}"), execution["result"]
    assert execution["result"]["output"] is None
