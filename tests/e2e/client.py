"""A small HTTP client for e2e tests: real HTTP to the running cloud."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")
PASSWORD = "e2e-password-123"


@dataclass
class Cloud:
    """Where the cloud under test answers."""

    url: str
    database_url: str | None = None
    log_path: Path | None = None
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

    def add_user(self, role: str) -> User:
        """Create a user with `role` in this tenant and log it in."""
        username = f"{self.username}-{role}-{uuid.uuid4().hex[:4]}"
        resp = self.post("/api/v1/users", {"username": username, "password": PASSWORD, "role": role})
        assert resp.status_code == 201, resp.text
        return self.cloud.login(username, PASSWORD, tenant_id=self.tenant_id)


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
