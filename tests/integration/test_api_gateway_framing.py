"""The local HTTP gateway frames requests as API Gateway would: no body is ever parsed as a request."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest

from chalicelib.local.api_server import create_server, load_app, serve_until
from tests.conftest import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def gateway(api: object) -> Iterator[int]:
    port = free_port()
    server = create_server(load_app(), "127.0.0.1", port)
    stop = threading.Event()
    thread = threading.Thread(target=serve_until, args=(server, stop), daemon=True)
    thread.start()
    yield port
    stop.set()
    thread.join(10)


def _exchange(port: int, raw: bytes) -> bytes:
    """Send raw bytes, read until the server closes (or 3 s of silence)."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as conn:
        conn.sendall(raw)
        received = b""
        try:
            while chunk := conn.recv(65536):
                received += chunk
        except TimeoutError:
            pass
    return received


def test_an_unknown_method_with_a_body_is_one_405_and_the_body_is_not_a_request(gateway: int) -> None:
    # GIVEN a TRACE whose body is itself a complete request (issue 10: two responses came back)
    smuggled = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    raw = b"TRACE /health HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(smuggled), smuggled)
    # WHEN it is sent on one keep-alive connection
    received = _exchange(gateway, raw)
    # THEN exactly one response: 405 in the error contract, and the connection closed
    assert received.count(b"HTTP/1.") == 1, received
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 405") or head.startswith(b"HTTP/1.0 405"), head
    assert json.loads(body)["error"]["code"] == "method_not_allowed"


def test_keep_alive_still_serves_pipelined_known_requests(gateway: int) -> None:
    # GIVEN two ordinary requests pipelined on one connection (the second closes it)
    raw = (b"GET /api/v1/nope HTTP/1.1\r\nHost: x\r\n\r\n"
           b"GET /api/v1/nope2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    # THEN both are answered, each once
    received = _exchange(gateway, raw)
    assert received.count(b"HTTP/1.1 ") == 2, received
