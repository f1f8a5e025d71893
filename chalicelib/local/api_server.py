"""The local API Gateway: Chalice's local server with API Gateway's edges and our error format.

Chalice's local server turns HTTP into the same Lambda proxy events API
Gateway sends, but differs from the deployed gateway where tests notice:
it reads any body however large (API Gateway refuses over 10 MiB), answers an
unknown route 403 "Missing Authentication Token" (deployed, a GatewayResponse
maps that to our 404, see infra/template.yaml), and lets malformed requests
end in stack traces. This request handler closes those gaps; routing, events
and the thread-local `current_request` stay Chalice's.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
import threading
from typing import Any

from chalice import Chalice
from chalice.config import Config
from chalice.local import (
    ChaliceRequestHandler,
    CustomLocalChalice,
    LocalChalice,
    LocalDevServer,
    LocalGatewayException,
    RouteMatcher,
    ThreadedHTTPServer,
)

from chalicelib.config import settings

log = logging.getLogger(__name__)
access_log = logging.getLogger("chalicelib.local.access")

MAX_REQUEST_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
IDLE_TIMEOUT_SECONDS = 60
_CODES = {400: "bad_request", 404: "not_found", 408: "request_timeout", 411: "length_required",
          413: "payload_too_large", 414: "uri_too_long", 431: "headers_too_large"}


def error_body(code: str, message: str) -> bytes:
    """The `{"error": {"code", "message"}}` contract, for errors the gateway itself answers."""
    return json.dumps({"error": {"code": code, "message": message}}).encode()


class GatewayRequestHandler(ChaliceRequestHandler):
    """Chalice's handler behind API Gateway's limits, with JSON errors and no tracebacks."""

    timeout = IDLE_TIMEOUT_SECONDS  # drop idle keep-alive connections, free their threads
    server_version = "attune-local"
    sys_version = ""
    # Headers and body go out in separate writes; with Nagle on, a keep-alive client's
    # delayed ACK stalls every response by ~40 ms. API Gateway has no such stall.
    disable_nagle_algorithm = True

    def __init__(self, request: Any, client_address: Any, server: Any,
                 app_object: Chalice, config: Config) -> None:
        self._app = app_object
        super().__init__(request, client_address, server, app_object, config)

    # -- errors the gateway answers itself ---------------------------------
    def _send_json_error(self, status: int, code: str, message: str, *, close: bool = False) -> None:
        body = error_body(code, message)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (bad request line, unknown method...) in our format."""
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # unparsable request: still send a status line
        if code == 501:  # a method no route has (TRACE, PROPFIND...): its body was never read, so
            # the connection closes, or those bytes would be parsed as the next request.
            self._send_json_error(405, "method_not_allowed", f"method {self.command} is not allowed", close=True)
            return
        status = code if code < 500 else 400
        self._send_json_error(status, _CODES.get(status, "bad_request"),
                              message or "malformed request", close=True)

    def log_message(self, format: str, *args: Any) -> None:
        """Access log lines through logging, so the supervisor prefixes them like the rest."""
        access_log.info("%s %s", self.address_string(), format % args)

    def _path(self) -> str:
        return str(getattr(self, "path", "")).split("?", 1)[0]

    # -- requests -----------------------------------------------------------
    def _generic_handle(self) -> None:
        # API Gateway puts the caller's address in requestContext.identity.sourceIp (the auth
        # throttle keys on it); Chalice's local converter hard-codes 127.0.0.1. Each connection
        # has its own gateway object, so this is per client.
        self.local_gateway.event_converter.LOCAL_SOURCE_IP = str(self.client_address[0])
        try:
            self._handle()
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:  # never a traceback to the client; the log keeps it
            log.exception("local gateway failed on %s %s", self.command, self._path())
            self._send_json_error(500, "internal_error", "internal server error", close=True)

    # The base class bound its own _generic_handle to these names; rebind to ours.
    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle

    def _content_length(self) -> int | None:
        raw = self.headers.get("Content-Length")
        if raw is None:
            return 0
        try:
            length = int(raw)
        except ValueError:
            return None
        return length if length >= 0 else None

    def _handle(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._send_json_error(411, "length_required", "send a Content-Length", close=True)
            return
        length = self._content_length()
        if length is None:
            self._send_json_error(400, "bad_request", "invalid Content-Length", close=True)
            return
        if length > MAX_REQUEST_BYTES:
            self._send_json_error(413, "payload_too_large",
                                  f"request body over {MAX_REQUEST_BYTES} bytes", close=True)
            return
        body = self.rfile.read(length) if length else None
        if body is not None and len(body) < length:
            self.close_connection = True  # the client went away mid-body
            return
        if not self._has_route():
            self._send_json_error(404, "not_found", f"no route for {self.command} {self._path()}")
            return
        try:
            response = self.local_gateway.handle_request(
                method=self.command, path=self.path, headers=dict(self.headers), body=body)
        except LocalGatewayException as exc:
            self._send_error_response(exc)
            return
        headers = dict(response["headers"] or {})
        headers.update(response.get("multiValueHeaders") or {})
        response = self._handle_binary(response)
        self._send_http_response(response["statusCode"], headers, response.get("body"))

    def _has_route(self) -> bool:
        """Whether a route declares this path and method (OPTIONS is answered for CORS)."""
        try:
            match = RouteMatcher(list(self._app.routes)).match_route(self.path)
        except ValueError:
            return False
        return self.command == "OPTIONS" or self.command in self._app.routes[match.route]

    def _send_http_response_with_body(self, code: int, headers: dict[str, Any],
                                      body: str | bytes) -> None:
        if self.command == "HEAD":  # headers only, as HTTP requires
            headers = dict(headers)
            headers["Content-Length"] = str(len(body.encode() if isinstance(body, str) else body))
            self.send_response(code)
            self._send_headers(headers)
            return
        super()._send_http_response_with_body(code, headers, body)


class GatewayServer(ThreadedHTTPServer):
    """One thread per connection; rebinding right after a restart; quiet about hang-ups."""

    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log a connection's failure once, without printing a traceback to stderr."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            log.debug("connection from %s dropped: %s", client_address, exc)
        else:
            log.exception("error serving %s", client_address)


def create_server(app: Chalice, host: str, port: int) -> LocalDevServer:
    """A server for `app` on host:port (not yet serving); binds at once so errors surface here."""
    if not isinstance(app, LocalChalice):
        # As chalice.local.create_local_server does: current_request becomes thread-local.
        CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
        app.__class__ = CustomLocalChalice
    config = Config(chalice_stage="dev", function_name="api_handler",
                    user_provided_params={"lambda_timeout": 29, "lambda_memory_size": 1024})
    return LocalDevServer(app, config, host, port,
                          handler_cls=GatewayRequestHandler, server_cls=GatewayServer)


def load_app(module: str = "app") -> Chalice:
    """The Chalice app object of `app.py` (the supervisor runs roles from the repo root)."""
    found = getattr(importlib.import_module(module), "app", None)
    if not isinstance(found, Chalice):
        raise TypeError(f"{module}.app is not a Chalice app")
    return found


def serve_until(server: LocalDevServer, stop: threading.Event) -> None:
    """Serve until `stop` is set, then close the listening socket."""
    def stopper() -> None:
        stop.wait()
        server.shutdown()

    threading.Thread(target=stopper, name="api-stopper", daemon=True).start()
    try:
        server.server.serve_forever(poll_interval=0.5)
    finally:
        server.server.server_close()


def serve(stop: threading.Event, ready: threading.Event) -> None:
    """The `api` role's main: `app.app` on settings().api_host:api_port."""
    cfg = settings()
    server = create_server(load_app(), cfg.api_host, cfg.api_port)
    log.info("API listening on http://%s:%s", cfg.api_host, cfg.api_port)
    ready.set()
    serve_until(server, stop)
