"""Helpers for tests that use Chalice's in-process test client."""

from __future__ import annotations

import json
import uuid
from typing import Any


class ApiUser:
    """A registered user of the in-process API, with helpers that send its token."""

    def __init__(self, client: Any, username: str, token: str, tenant_id: int) -> None:
        self.client = client
        self.username = username
        self.token = token
        self.tenant_id = tenant_id

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}

    def request(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
        """Send a request; returns (status, parsed JSON body)."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        fn = getattr(self.client.http, method.lower())
        kwargs: dict[str, Any] = {"headers": self._headers()}
        if data is not None:
            kwargs["body"] = data
        resp = fn(path, **kwargs)
        return resp.status_code, (json.loads(resp.body) if resp.body else None)

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)

    def post(self, path: str, body: Any = None) -> tuple[int, Any]:
        return self.request("POST", path, body)

    def delete(self, path: str) -> tuple[int, Any]:
        return self.request("DELETE", path)

    def patch(self, path: str, body: Any = None) -> tuple[int, Any]:
        return self.request("PATCH", path, body)


def register(client: Any, prefix: str = "user") -> ApiUser:
    """Register a new tenant admin and log in."""
    username = f"{prefix}-{uuid.uuid4().hex[:10]}"
    password = "correct-horse-battery"
    headers = {"Content-Type": "application/json"}
    resp = client.http.post(
        "/auth/register", headers=headers, body=json.dumps({"username": username, "password": password})
    )
    assert resp.status_code == 201, resp.body
    tenant_id = json.loads(resp.body)["tenant_id"]
    resp = client.http.post(
        "/auth/login", headers=headers, body=json.dumps({"username": username, "password": password})
    )
    assert resp.status_code == 200, resp.body
    return ApiUser(client, username, json.loads(resp.body)["access_token"], tenant_id)
