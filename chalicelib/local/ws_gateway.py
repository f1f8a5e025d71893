"""The local API Gateway WebSocket API: WebSocket clients and the `@connections` management API on one port.

What API Gateway does for the deployed WebSocket API, and nothing more: it
holds the client sockets, turns connect, each message and disconnect into the
same Lambda events (`requestContext.routeKey`, `connectionId`, ...) and
calls the Chalice websocket handlers of app.py with them, and it serves
`POST|GET|DELETE [/{stage}]/@connections/{id}`, which the notifier's
`post_to_connection` (chalicelib/aws/websocket.py) talks to. Like API
Gateway, it routes a message by its `action` (`$request.body.action`) and
sends a two-way route's response body back to the client, refuses the
handshake with the status `$connect` answers, limits messages to 128 KiB,
and answers `GoneException` (410) for a connection it does not hold. The
management API checks the caller's SigV4 signature against the platform's
key, as AWS IAM would: tenant code that reaches this port cannot push into
other clients' sockets.

One asyncio server reads each request's head and hands it either to the
WebSocket protocol (websockets' sans-I/O `ServerProtocol`) or to the small
HTTP handler; the handlers, which block on PostgreSQL, run in a thread pool.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import importlib
import json
import logging
import os
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from chalice.local import LambdaContext
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import SEND_EOF, State
from websockets.server import ServerProtocol

from chalicelib.config import settings
from chalicelib.local.api_server import load_app
from chalicelib.notifications.connections import forget_every_connection

log = logging.getLogger(__name__)
# websockets logs every connection open/close at INFO; the gateway's own log says what matters.
protocol_log = logging.getLogger(f"{__name__}.protocol")
protocol_log.setLevel(logging.WARNING)

API_ID = "local"
STAGE = "api"  # Chalice's default API Gateway stage, as the template deploys it
MAX_MESSAGE_BYTES = 128 * 1024  # API Gateway's WebSocket message limit
MAX_HEAD_BYTES = 16 * 1024
HTTP_IDLE_SECONDS = 60.0
SEND_TIMEOUT_SECONDS = 5.0
MAX_CLOCK_SKEW_SECONDS = 15 * 60  # AWS refuses signatures older than this
_CONNECTIONS_PATH = re.compile(r"^(?:/[^/@]+)?/@connections/([^/]+)$")
_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                   r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$")
Handler = Callable[[dict[str, Any], Any], Any]


@dataclass(frozen=True)
class Routes:
    """The app's websocket handlers by route, and the route keys a message's `action` may select."""

    connect: Handler
    message: Handler
    disconnect: Handler
    actions: frozenset[str] = frozenset({"subscribe"})


def load_routes(module: str = "app") -> Routes:
    """The Chalice websocket handlers of `module` (what API Gateway's integrations invoke)."""
    app, code = load_app(module), importlib.import_module(module)
    found = {key: getattr(code, cfg.handler_string.rpartition(".")[2]) for key, cfg in app.websocket_handlers.items()}
    return Routes(connect=found["$connect"], message=found["$default"], disconnect=found["$disconnect"])


def _now_ms() -> int:
    return int(time.time() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    """Method, target and headers (names as sent; repeated ones joined) of an HTTP request head."""
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            key = next((k for k in headers if k.lower() == name.strip().lower()), name.strip())
            headers[key] = f"{headers[key]},{value.strip()}" if key in headers else value.strip()
    return method, target, headers


def header(headers: dict[str, str], name: str) -> str | None:
    """A header by case-insensitive name."""
    return next((v for k, v in headers.items() if k.lower() == name), None)


def sigv4_valid(method: str, target: str, headers: dict[str, str], body: bytes, *, key_id: str, secret: str) -> bool:
    """Whether the request carries a valid `execute-api` SigV4 signature by `key_id`, made recently."""
    match = _AUTH.match(header(headers, "authorization") or "")
    stamp = header(headers, "x-amz-date") or ""
    if match is None or match[1] != key_id or match[4] != "execute-api" or not stamp.startswith(match[2]):
        return False
    try:
        signed_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return False
    if abs(time.time() - signed_at) > MAX_CLOCK_SKEW_SECONDS:
        return False
    names = match[5].split(";")
    if "host" not in names or any(header(headers, n) is None for n in names):
        return False
    request = AWSRequest(method=method, url=f"http://{header(headers, 'host')}{target}", data=body,
                         headers={n: header(headers, n) for n in names})
    request.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(key_id, secret), "execute-api", match[3])
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    return hmac.compare_digest(expected, match[6])


@dataclass
class Client:
    """One WebSocket connection: its protocol state, its socket, and what API Gateway reports about it."""

    connection_id: str
    protocol: ServerProtocol
    writer: asyncio.StreamWriter
    headers: dict[str, str]
    source_ip: str
    connected_at: int = field(default_factory=_now_ms)
    last_active: int = field(default_factory=_now_ms)
    backlog: list[bytes] = field(default_factory=list)  # posts that arrived before the handshake finished

    def flush(self) -> None:
        """Write what the protocol has to send; its end-of-stream closes our half of the socket."""
        for chunk in self.protocol.data_to_send():
            if chunk is SEND_EOF or chunk == b"":
                if self.writer.can_write_eof():
                    with contextlib.suppress(OSError):
                        self.writer.write_eof()
            else:
                self.writer.write(chunk)

    def send(self, data: bytes) -> None:
        """A text message to the client (queued until the handshake is done)."""
        if self.protocol.state is State.CONNECTING:
            self.backlog.append(data)
        elif self.protocol.state is State.OPEN:
            self.protocol.send_text(data)
            self.flush()


class Gateway:
    """The connections this gateway holds and the two protocols it speaks."""

    def __init__(self, routes: Routes, *, port: int, pool: ThreadPoolExecutor) -> None:
        self.routes = routes
        self.port = port
        self.pool = pool
        self.clients: dict[str, Client] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.callers: set[asyncio.StreamWriter] = set()  # management API connections, kept alive

    # -- calling the handlers ---------------------------------------------------------------
    def _context(self, event: dict[str, Any], client: Client, route: str, event_type: str) -> dict[str, Any]:
        ctx = {
            "routeKey": route, "eventType": event_type, "messageDirection": "IN", "stage": STAGE,
            "connectedAt": client.connected_at, "requestTimeEpoch": _now_ms(),
            "requestTime": datetime.now(UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "identity": {"sourceIp": client.source_ip, "userAgent": header(client.headers, "user-agent")},
            "requestId": secrets.token_hex(8), "extendedRequestId": secrets.token_hex(8),
            "domainName": header(client.headers, "host") or f"127.0.0.1:{self.port}",
            "connectionId": client.connection_id, "apiId": API_ID,
        }
        return {**event, "requestContext": ctx, "isBase64Encoded": event.get("isBase64Encoded", False)}

    async def _invoke(self, handler: Handler, event: dict[str, Any]) -> dict[str, Any]:
        context = LambdaContext(function_name=f"{settings().stack_name}-websocket-local", memory_size=512,
                                max_runtime_ms=29_000)
        try:
            response = await asyncio.get_running_loop().run_in_executor(self.pool, handler, event, context)
        except Exception:  # API Gateway answers an integration failure with 500
            log.exception("websocket handler %s failed", event["requestContext"]["routeKey"])
            return {"statusCode": 500, "body": json.dumps({"message": "Internal server error"})}
        return response if isinstance(response, dict) else {"statusCode": 200}

    # -- the server ----------------------------------------------------------------------
    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One TCP connection: a WebSocket client or a management API caller."""
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HTTP_IDLE_SECONDS)
            method, target, headers = parse_head(head)
            if method == "GET" and (header(headers, "upgrade") or "").lower() == "websocket":
                await self._websocket(head, target, headers, reader, writer)
            else:
                self.callers.add(writer)
                await self._http(method, target, headers, reader, writer)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError, ValueError):
            pass  # a caller that went away or sent no valid request head
        except asyncio.CancelledError:
            pass  # the gateway is stopping; this connection ends with it
        finally:
            self.callers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
            if task is not None:
                self.tasks.discard(task)

    async def _websocket(self, head: bytes, target: str, headers: dict[str, str],
                         reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        protocol = ServerProtocol(max_size=MAX_MESSAGE_BYTES, logger=protocol_log)
        protocol.receive_data(head)
        request = next((e for e in protocol.events_received() if isinstance(e, Request)), None)
        peer = writer.get_extra_info("peername") or ("127.0.0.1", 0)
        client = Client(secrets.token_urlsafe(12), protocol, writer, headers, str(peer[0]))
        if request is None:
            client.flush()
            return
        handshake = protocol.accept(request)
        if handshake.status_code != 101:  # not a valid WebSocket handshake: refused before $connect
            protocol.send_response(handshake)
            client.flush()
            return
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(target).query))
        multi = {k: [v] for k, v in headers.items()}
        event = {"headers": headers, "multiValueHeaders": multi, "queryStringParameters": query or None,
                 "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} or None}
        self.clients[client.connection_id] = client
        answer = await self._invoke(self.routes.connect, self._context(event, client, "$connect", "CONNECT"))
        status = int(answer.get("statusCode", 200))
        if not 200 <= status < 300:
            del self.clients[client.connection_id]
            protocol.send_response(protocol.reject(status, str(answer.get("body") or "")))
            client.flush()
            return
        try:  # connected: whatever happens from here on, $disconnect follows
            protocol.send_response(handshake)
            for data in client.backlog:
                protocol.send_text(data)
            client.backlog.clear()
            client.flush()
            await self._frames(client, reader)
        finally:
            self.clients.pop(client.connection_id, None)
            close = protocol.close_rcvd or protocol.close_sent
            gone = {"headers": headers, "multiValueHeaders": multi}
            gone_ctx = self._context(gone, client, "$disconnect", "DISCONNECT")
            gone_ctx["requestContext"]["disconnectStatusCode"] = close.code if close else 1006
            gone_ctx["requestContext"]["disconnectReason"] = close.reason if close else ""
            await self._invoke(self.routes.disconnect, gone_ctx)

    async def _frames(self, client: Client, reader: asyncio.StreamReader) -> None:
        """Read frames until the socket closes; each complete message goes to its route, in order."""
        protocol, binary = client.protocol, False
        parts: list[bytes] = []
        while protocol.state is not State.CLOSED and not protocol.eof_sent:
            data = await reader.read(65536)
            if data:
                protocol.receive_data(data)
            else:
                protocol.receive_eof()
            for frame in protocol.events_received():
                if not isinstance(frame, Frame) or frame.opcode not in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
                    continue
                if frame.opcode is not Opcode.CONT:
                    parts, binary = [], frame.opcode is Opcode.BINARY
                parts.append(bytes(frame.data))
                if frame.fin:
                    await self._message(client, b"".join(parts), binary)
            client.flush()
            await client.writer.drain()
            if not data:
                break

    async def _message(self, client: Client, body: bytes, binary: bool) -> None:
        client.last_active = _now_ms()
        try:
            action = json.loads(body).get("action") if not binary else None
        except (ValueError, AttributeError):
            action = None
        route = action if isinstance(action, str) and action in self.routes.actions else "$default"
        text = base64.b64encode(body).decode() if binary else body.decode("utf-8", "replace")
        event = {"body": text, "isBase64Encoded": binary}
        ctx = self._context(event, client, route, "MESSAGE")
        ctx["requestContext"]["messageId"] = secrets.token_urlsafe(12)
        answer = await self._invoke(self.routes.message, ctx)
        if answer.get("body"):  # a two-way route: the integration's response goes back to the client
            client.send(str(answer["body"]).encode())

    # -- the @connections management API ---------------------------------------------------
    async def _http(self, method: str, target: str, headers: dict[str, str],
                    reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                length = int(header(headers, "content-length") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_MESSAGE_BYTES + 1024:
                self._reply(writer, 413 if length > 0 else 400, "PayloadTooLargeException" if length > 0
                            else "BadRequestException", close=True)
                return
            body = await reader.readexactly(length) if length else b""
            status, error, payload = await self._manage(method, target, headers, body)
            closing = (header(headers, "connection") or "").lower() == "close"
            self._reply(writer, status, error, payload, close=closing)
            await writer.drain()
            if closing:
                return
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HTTP_IDLE_SECONDS)
            method, target, headers = parse_head(head)

    @staticmethod
    def _reply(writer: asyncio.StreamWriter, status: int, error: str | None, payload: Any = None, *,
               close: bool = False) -> None:
        body = json.dumps({"message": error} if error else payload).encode() if (error or payload) else b""
        lines = [f"HTTP/1.1 {status} {'OK' if status < 300 else 'Error'}", "Content-Type: application/json",
                 f"Content-Length: {len(body)}", f"x-amzn-RequestId: {secrets.token_hex(8)}"]
        if error:
            lines.append(f"x-amzn-ErrorType: {error}")
        if close:
            lines.append("Connection: close")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    async def _manage(self, method: str, target: str, headers: dict[str, str],
                      body: bytes) -> tuple[int, str | None, Any]:
        match = _CONNECTIONS_PATH.match(urllib.parse.urlsplit(target).path)
        if match is None or method not in ("POST", "GET", "DELETE"):
            return 404, "NotFoundException", None
        key_id, secret = os.environ.get("AWS_ACCESS_KEY_ID", ""), os.environ.get("AWS_SECRET_ACCESS_KEY", "")
        if not key_id or not sigv4_valid(method, target, headers, body, key_id=key_id, secret=secret):
            return 403, "ForbiddenException", None
        client = self.clients.get(urllib.parse.unquote(match[1]))
        if client is None or client.protocol.state in (State.CLOSING, State.CLOSED):
            return 410, "GoneException", None
        if method == "GET":
            return 200, None, {"connectedAt": _iso(client.connected_at), "lastActiveAt": _iso(client.last_active),
                               "identity": {"sourceIp": client.source_ip,
                                            "userAgent": header(client.headers, "user-agent")}}
        if method == "DELETE":
            client.protocol.send_close(1000, "closed by the management API")
            client.flush()
            return 204, None, None
        if len(body) > MAX_MESSAGE_BYTES:
            return 413, "PayloadTooLargeException", None
        client.send(body)
        try:
            await asyncio.wait_for(client.writer.drain(), SEND_TIMEOUT_SECONDS)
        except (TimeoutError, ConnectionError):  # a client that does not read is cut off, as API Gateway does
            client.protocol.fail(1008, "not reading")
            client.flush()
            return 410, "GoneException", None
        return 200, None, None

    async def close_all(self) -> None:
        """Going away: close every client (their $disconnect runs) and caller, then wait briefly for them."""
        for client in list(self.clients.values()):
            if client.protocol.state is State.OPEN:
                client.protocol.send_close(1001, "gateway stopping")
                client.flush()
        for caller in list(self.callers):
            caller.close()
        if self.tasks:
            _, late = await asyncio.wait(list(self.tasks), timeout=3)
            for task in late:
                task.cancel()


async def _run(gateway: Gateway, host: str, port: int, stop: threading.Event, ready: threading.Event) -> None:
    server = await asyncio.start_server(gateway.handle, host, port, reuse_address=True, limit=MAX_HEAD_BYTES * 8)
    log.info("WebSocket gateway listening on ws://%s:%s (management API: http://%s:%s/@connections)",
             host, port, host, port)
    ready.set()
    await asyncio.get_running_loop().run_in_executor(None, stop.wait)
    server.close()
    await gateway.close_all()


def serve(stop: threading.Event, ready: threading.Event) -> None:
    """The `ws` role's main: the gateway on settings().api_host:ws_port until `stop` is set."""
    cfg = settings()
    forgotten = forget_every_connection()  # a (re)started gateway holds no connection
    if forgotten:
        log.info("forgot %d connection(s) of a previous gateway", forgotten)
    with ThreadPoolExecutor(8, thread_name_prefix="ws-handler") as pool:
        gateway = Gateway(load_routes(), port=cfg.ws_port, pool=pool)
        asyncio.run(_run(gateway, cfg.api_host, cfg.ws_port, stop, ready))
