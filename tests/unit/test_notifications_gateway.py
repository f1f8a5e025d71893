"""The local WebSocket gateway against fake handlers: API Gateway's events, routing, and `@connections`.

No database and no AWS: the gateway runs on a loopback port with handlers
that record the events they get; a real WebSocket client and boto3's own
`apigatewaymanagementapi` client (through chalicelib/aws/websocket.py) talk
to it, as the notifier does.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from chalicelib.aws import websocket
from chalicelib.config import settings
from chalicelib.local import ws_gateway
from chalicelib.local.moto_server import free_port

KEY, SECRET = "AKIAGATEWAYTEST", "gateway-test-secret"


class Handlers:
    """Records every event; `$connect` refuses a token of `bad`; messages answer with what they got."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def connect(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        if (event.get("queryStringParameters") or {}).get("token") == "bad":
            return {"statusCode": 401, "body": json.dumps({"error": {"code": "unauthorized", "message": "no"}})}
        return {"statusCode": 200}

    def message(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        return {"statusCode": 200, "body": json.dumps({"route": event["requestContext"]["routeKey"]})}

    def disconnect(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        return {"statusCode": 200}

    def of(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["requestContext"]["eventType"] == event_type]


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Handlers]]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    port = free_port()
    handlers = Handlers()
    routes = ws_gateway.Routes(connect=handlers.connect, message=handlers.message, disconnect=handlers.disconnect)
    stop, ready = threading.Event(), threading.Event()
    with ThreadPoolExecutor(4) as pool:
        gw = ws_gateway.Gateway(routes, port=port, pool=pool)
        thread = threading.Thread(target=asyncio.run, args=(ws_gateway._run(gw, "127.0.0.1", port, stop, ready),))
        thread.start()
        assert ready.wait(10)
        monkeypatch.setenv("ATTUNE_WS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
        settings.cache_clear()  # the endpoint is a setting, read once
        websocket.reset_client()
        try:
            yield f"127.0.0.1:{port}", handlers
        finally:
            stop.set()
            thread.join(10)
            monkeypatch.delenv("ATTUNE_WS_ENDPOINT_URL")
            settings.cache_clear()
            websocket.reset_client()


def _eventually(probe: Any, timeout: float = 5) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := probe()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return found


def test_connect_message_and_post_travel_as_on_api_gateway(gateway: tuple[str, Handlers]) -> None:
    host, handlers = gateway
    # GIVEN a client connected with a token
    with connect(f"ws://{host}/?token=abc", proxy=None, compression=None) as ws:
        (connected,) = handlers.of("CONNECT")
        ctx = connected["requestContext"]
        assert ctx["routeKey"] == "$connect" and connected["queryStringParameters"] == {"token": "abc"}
        assert ctx["stage"] == "api" and ctx["connectionId"]
        connection_id = ctx["connectionId"]
        # WHEN it sends a subscribe and something else THEN they reach their routes, and the answers come back
        ws.send(json.dumps({"action": "subscribe", "events": ["*"]}))
        assert json.loads(ws.recv(timeout=5)) == {"route": "subscribe"}
        ws.send("hello")
        assert json.loads(ws.recv(timeout=5)) == {"route": "$default"}
        messages = handlers.of("MESSAGE")
        assert [m["body"] for m in messages] == ['{"action": "subscribe", "events": ["*"]}', "hello"]
        assert {m["requestContext"]["connectionId"] for m in messages} == {connection_id}
        # WHEN the notifier posts to the connection THEN the client receives exactly that
        assert websocket.post(connection_id, b'{"event": "x"}') is websocket.Posted.SENT
        assert ws.recv(timeout=5) == '{"event": "x"}'
        # AND get_connection describes it
        info = _client(host).get_connection(ConnectionId=connection_id)
        assert info["Identity"]["SourceIp"] == "127.0.0.1"
    # WHEN the client leaves THEN $disconnect runs once and posts answer Gone
    (gone,) = _eventually(lambda: handlers.of("DISCONNECT"))
    assert gone["requestContext"]["connectionId"] == connection_id
    assert gone["requestContext"]["disconnectStatusCode"] == 1000
    assert websocket.post(connection_id, b"late") is websocket.Posted.GONE


def test_a_refused_connect_is_the_handlers_status(gateway: tuple[str, Handlers]) -> None:
    host, handlers = gateway
    with pytest.raises(InvalidStatus) as err:
        connect(f"ws://{host}/?token=bad", proxy=None)
    assert err.value.response.status_code == 401
    assert b"unauthorized" in (err.value.response.body or b"")
    assert handlers.of("DISCONNECT") == []  # never connected, so never disconnected


def test_the_management_api_refuses_an_unsigned_or_foreign_caller(gateway: tuple[str, Handlers]) -> None:
    host, handlers = gateway
    with connect(f"ws://{host}/?token=abc", proxy=None) as ws:
        connection_id = handlers.of("CONNECT")[0]["requestContext"]["connectionId"]
        # GIVEN a caller signing with another key (tenant code that found the port) THEN 403, nothing sent
        with pytest.raises(ClientError) as err:
            _client(host, key="AKIAOTHER", secret="guess").post_to_connection(ConnectionId=connection_id, Data=b"x")
        assert err.value.response["Error"]["Code"] == "ForbiddenException"
        # AND with the right key id but a wrong secret
        with pytest.raises(ClientError) as err:
            _client(host, secret="wrong").post_to_connection(ConnectionId=connection_id, Data=b"x")
        assert err.value.response["Error"]["Code"] == "ForbiddenException"
        # AND without any signature
        import httpx
        resp = httpx.post(f"http://{host}/@connections/{connection_id}", content=b"x")
        assert resp.status_code == 403
        # WHEN the platform posts THEN only its message arrives
        assert websocket.post(connection_id, b"mine") is websocket.Posted.SENT
        assert ws.recv(timeout=5) == "mine"


def test_delete_connection_closes_the_client(gateway: tuple[str, Handlers]) -> None:
    host, handlers = gateway
    with connect(f"ws://{host}/?token=abc", proxy=None) as ws:
        connection_id = handlers.of("CONNECT")[0]["requestContext"]["connectionId"]
        _client(host).delete_connection(ConnectionId=connection_id)
        _eventually(lambda: handlers.of("DISCONNECT"))
        with pytest.raises(Exception):  # noqa: B017 - the socket is closed, however websockets says it
            ws.recv(timeout=5)


def test_an_oversized_post_is_refused(gateway: tuple[str, Handlers]) -> None:
    host, handlers = gateway
    with connect(f"ws://{host}/?token=abc", proxy=None):
        connection_id = handlers.of("CONNECT")[0]["requestContext"]["connectionId"]
        assert websocket.post(connection_id, b"x" * (ws_gateway.MAX_MESSAGE_BYTES + 1)) is websocket.Posted.REFUSED


def _client(host: str, key: str = KEY, secret: str = SECRET) -> Any:
    return boto3.session.Session().client("apigatewaymanagementapi", endpoint_url=f"http://{host}",
                                          region_name="us-east-1", aws_access_key_id=key,
                                          aws_secret_access_key=secret)
