"""A small HTTP client for e2e tests: real HTTP (and a real WebSocket) to the running cloud."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

T = TypeVar("T")
PASSWORD = "e2e-password-123"


@dataclass
class Cloud:
    """Where the cloud under test answers."""

    url: str
    database_url: str | None = None
    log_path: Path | None = None
    ws_url: str | None = None
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def register(self, prefix: str = "e2e") -> User:
        """A new tenant admin, logged in."""
        username = f"{prefix}-{uuid.uuid4().hex[:10]}"
        resp = self.http.post("/auth/register", json={"username": username, "password": PASSWORD})
        assert resp.status_code == 201, resp.text
        return self.login(username, PASSWORD, tenant_id=resp.json()["tenant_id"])

    def login(self, username: str, password: str, tenant_id: int | None = None) -> User:
        """Log in an existing user."""
        resp = self.http.post("/auth/login", json={"username": username, "password": password})
        assert resp.status_code == 200, resp.text
        return User(self, username, resp.json()["access_token"], tenant_id)


@dataclass
class User:
    """A logged-in user; every call sends its bearer token."""

    cloud: Cloud
    username: str
    token: str
    tenant_id: int | None

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request with this user's token."""
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return self.cloud.http.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return self.call("POST", path, json=body, **kwargs)

    def patch(self, path: str, body: Any = None) -> httpx.Response:
        return self.call("PATCH", path, json=body)

    def delete(self, path: str) -> httpx.Response:
        return self.call("DELETE", path)

    def listen(self) -> Listener:
        """A WebSocket client of the cloud's notifications, connected with this user's token."""
        assert self.cloud.ws_url, "this cloud has no WebSocket URL"
        return Listener(f"{self.cloud.ws_url}/?token={urllib.parse.quote(self.token)}")

    def add_user(self, role: str) -> User:
        """Create a user with `role` in this tenant and log it in."""
        username = f"{self.username}-{role}-{uuid.uuid4().hex[:4]}"
        resp = self.post("/api/v1/users", {"username": username, "password": PASSWORD, "role": role})
        assert resp.status_code == 201, resp.text
        return self.cloud.login(username, PASSWORD, tenant_id=self.tenant_id)


class Listener:
    """A real WebSocket client that records every message with the wall-clock time it arrived."""

    def __init__(self, url: str) -> None:
        self.ws: ClientConnection = connect(url, proxy=None, compression=None, open_timeout=15, legacy=True)
        self.received: list[tuple[float, dict[str, Any]]] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for raw in self.ws:
                at = time.time()
                with self._cond:
                    self.received.append((at, json.loads(raw)))
                    self._cond.notify_all()
        except ConnectionClosed:
            pass

    def notifications(self) -> list[dict[str, Any]]:
        """Every notification so far (control replies left out), oldest first."""
        with self._cond:
            return [m for _, m in self.received if "event" in m]

    def wait(self, probe: Callable[[list[dict[str, Any]]], T | None], what: str, timeout: float = 30) -> T:
        """Wait until `probe(every message so far)` is truthy; fail on the deadline showing what came."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = probe([m for _, m in self.received])
                if found:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout}s waiting for {what}; got {self.received!r}")
                self._cond.wait(left)

    def subscribe(self, events: list[str] | None = None, entity_id: int | None = None) -> dict[str, Any]:
        """Send a subscribe and wait for the gateway's answer (after it, the subscription applies)."""
        before = len(self.received)
        request: dict[str, Any] = {"action": "subscribe"}
        if events is not None:
            request["events"] = events
        if entity_id is not None:
            request["entity_id"] = entity_id
        self.ws.send(json.dumps(request))
        replies = self.wait(lambda ms: [m for m in ms[before:] if "action" in m or "error" in m], "a subscribe reply")
        return replies[0]

    def close(self) -> None:
        """Close the socket (the gateway runs $disconnect)."""
        self.ws.close()
        self._reader.join(5)

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_for(probe: Callable[[], T | None], timeout: float = 30, interval: float = 0.1, what: str = "condition") -> T:
    """Poll `probe` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
