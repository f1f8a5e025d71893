"""attune_action: the helper library action processes import (`import attune_action`).

The worker puts this directory on the action's PYTHONPATH. It uses the
standard library only and stays Python 3.8-compatible, because it runs in
whatever interpreter the action uses (a pack's virtualenv included).

The execution context (API URL, a short-lived token scoped to this execution)
is not in the environment or the command line, where other processes and
crash reports could see it: the worker passes it on an inherited pipe whose
descriptor number is in `ATTUNE_CONTEXT_FD`. `context()` reads it once, on
first use, and keeps it in memory.
"""

from __future__ import annotations

import json
import os
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

__all__ = [
    "AttuneActionError",
    "context",
    "datastore_delete",
    "datastore_get",
    "datastore_set",
    "emit",
]

DATASTORE_PATH = "/api/v1/datastore"
EVENTS_PATH = "/api/v1/events"
_WEBHOOK_PATH = re.compile(r"^/api/v1/webhooks/([0-9]+)/?$")
DEFAULT_HTTP_TIMEOUT_S = 30.0

_lock = threading.Lock()
_context: dict[str, Any] | None = None


class AttuneActionError(Exception):
    """Raised when the helper cannot do what was asked: no context, API unreachable, API refused."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _read_context() -> dict[str, Any]:
    raw = os.environ.get("ATTUNE_CONTEXT_FD")
    if not raw:
        raise AttuneActionError("no Attune context: ATTUNE_CONTEXT_FD is not set (is this running under a worker?)")
    try:
        with os.fdopen(int(raw), "rb") as pipe:  # closes the descriptor: nothing else can read it after us
            data = pipe.read()
    except (OSError, ValueError) as exc:
        raise AttuneActionError(f"cannot read the Attune context from descriptor {raw}: {exc}") from exc
    if not data.strip():
        raise AttuneActionError("the Attune context was already read by another process of this action")
    doc = json.loads(data)
    if not isinstance(doc, dict):
        raise AttuneActionError("the Attune context is not a JSON object")
    return doc


def context() -> dict[str, Any]:
    """The execution context: `api_url`, `token`, `execution_id`, and what else the worker passes.

    Read once per process (the pipe can only be read once) and returned as a
    copy, so a caller cannot change what later calls see.
    """
    global _context
    with _lock:
        if _context is None:
            _context = _read_context()
        return dict(_context)


def _api(method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """(status, parsed body) of one API call; 2xx and 404 come back, other statuses raise."""
    ctx = context()
    base = str(ctx.get("api_url") or "")
    if urllib.parse.urlsplit(base).scheme not in ("http", "https"):
        raise AttuneActionError(f"the Attune context has no usable api_url: {base!r}")
    headers = {"Accept": "application/json", "Authorization": f"Bearer {ctx.get('token', '')}"}
    data = None
    if body is not None:
        data = json.dumps(body, allow_nan=False).encode()
        headers["Content-Type"] = "application/json"
    url = base.rstrip("/") + path
    request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 - scheme checked
    timeout = float(ctx.get("http_timeout_s") or DEFAULT_HTTP_TIMEOUT_S)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked
            return response.status, _json(response.read())
    except urllib.error.HTTPError as exc:
        status, doc = exc.code, _json(exc.read())
    except (urllib.error.URLError, OSError) as exc:
        raise AttuneActionError(f"cannot reach the Attune API at {base}: {exc}") from exc
    if status == 404:
        return status, doc
    err = doc.get("error", {}) if isinstance(doc, dict) else {}
    raise AttuneActionError(
        f"{method} {path} failed with {status}: {err.get('message', 'no message')}",
        status=status,
        code=err.get("code"),
    )


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw.strip() else None
    except ValueError:
        return None


def _key_path(key: str) -> str:
    if not isinstance(key, str) or not key:
        raise AttuneActionError(f"a datastore key is a non-empty string, got {key!r}")
    return f"{DATASTORE_PATH}/{urllib.parse.quote(key, safe='')}"


def datastore_get(key: str, default: Any = None) -> Any:
    """The value stored under `key` (secrets decrypted), or `default` when the key is absent or expired."""
    status, doc = _api("GET", _key_path(key))
    if status == 404 or not isinstance(doc, dict):
        return default
    return doc.get("value")


def datastore_set(key: str, value: Any, *, encrypted: bool = False, ttl: int | None = None) -> dict[str, Any]:
    """Store a JSON value under `key`, replacing every attribute; returns the stored item (secrets masked).

    `encrypted=True` stores it as a secret; `ttl` (seconds) makes it expire.
    """
    body: dict[str, Any] = {"key": key, "value": value, "encrypted": bool(encrypted)}
    if ttl is not None:
        body["ttl"] = ttl
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise AttuneActionError(f"the value for {key!r} is not JSON-serialisable: {exc}") from exc
    _key_path(key)
    status, doc = _api("POST", DATASTORE_PATH, body)
    if status == 404:
        raise AttuneActionError(f"POST {DATASTORE_PATH} failed with 404", status=404)
    return doc if isinstance(doc, dict) else {}


def datastore_delete(key: str) -> bool:
    """Delete `key`; False when there was nothing to delete."""
    status, _doc = _api("DELETE", _key_path(key))
    return status != 404


def _trigger_id(target: Any) -> int:
    """The trigger a webhook URL (absolute, of this Attune, or its path) or a trigger id names."""
    if isinstance(target, int) and not isinstance(target, bool) and target > 0:
        return target
    if isinstance(target, str) and target.strip().isdigit():
        return int(target.strip())
    if isinstance(target, str):
        url = urllib.parse.urlsplit(target.strip())
        if url.scheme or url.netloc:
            api = urllib.parse.urlsplit(str(context().get("api_url") or ""))
            if (url.scheme, url.netloc) != (api.scheme, api.netloc):
                raise AttuneActionError(
                    f"emit() fires this Attune's triggers only ({api.scheme}://{api.netloc}), not {target!r}: "
                    "the execution's token must not be sent elsewhere"
                )
        found = _WEBHOOK_PATH.match(url.path)
        if found:
            return int(found.group(1))
    raise AttuneActionError(
        f"emit() takes a webhook URL (/api/v1/webhooks/<id>) or a trigger id, got {target!r}"
    )


def emit(webhook_url_or_trigger_id: Any, payload: Any = None) -> dict[str, Any]:
    """Fire one of the tenant's triggers with `payload` (a JSON value; default {}) as this execution.

    The event continues this execution's chain (its `trace`, one level
    deeper), so the executions it leads to are found with
    `GET /api/v1/executions?trace=`, and a loop stops at the platform's depth
    limit: the answer's `status` is then `suppressed`, with the `reason`
    (nothing is raised: the action decides). Returns `{"event_id", "status",
    "trace", "depth"}`; an unknown or disabled trigger raises AttuneActionError (404).
    """
    trigger_id = _trigger_id(webhook_url_or_trigger_id)
    body = {"trigger_id": trigger_id, "payload": {} if payload is None else payload}
    try:
        json.dumps(body, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise AttuneActionError(f"the payload is not JSON-serialisable: {exc}") from exc
    status, doc = _api("POST", EVENTS_PATH, body)
    if status == 404:
        message = doc.get("error", {}).get("message") if isinstance(doc, dict) else None
        raise AttuneActionError(message or f"trigger {trigger_id} not found", status=404, code="not_found")
    return doc if isinstance(doc, dict) else {}
