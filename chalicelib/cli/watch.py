"""Following an execution to its end: over the notifications WebSocket when there is one, else polling.

The WebSocket tells of each status change as it commits, so `attune run`
and `attune execution tail` show `running` the moment it happens and cost the
API nothing while they wait. The subscription is made before the execution is
read once, so a change can never fall between the read and the first
notification; any failure to connect (no gateway, a deployed stack without
`--ws-url`) falls back to polling the REST API, which gives the same answer
later.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from websockets.exceptions import WebSocketException

from chalicelib.cli.output import note
from chalicelib.cli.session import CliError, Session

FINAL = frozenset({"succeeded", "succeeded_with_errors", "failed", "canceled"})
POLL_S = 0.5
OnChange = Callable[[dict[str, Any]], None]


class Timeout(CliError):
    """The execution did not finish within the time the user gave."""


def _fetch(session: Session, execution_id: int) -> dict[str, Any]:
    found: dict[str, Any] = session.call("GET", f"/api/v1/executions/{execution_id}")
    return found


def follow(session: Session, execution_id: int, on_change: OnChange, *, timeout: float | None) -> dict[str, Any]:
    """Wait for the execution's final status, calling `on_change` with each new status; the final execution."""
    deadline = None if timeout is None else time.monotonic() + timeout
    if session.ws_url:
        try:
            return _over_websocket(session, execution_id, on_change, deadline)
        except (OSError, WebSocketException) as exc:
            note(f"live notifications unavailable at {session.ws_url} ({exc}); polling")
    return _polling(session, execution_id, on_change, deadline, last=None)


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)


def _over_websocket(session: Session, execution_id: int, on_change: OnChange,
                    deadline: float | None) -> dict[str, Any]:
    from websockets.sync.client import connect

    assert session.ws_url is not None
    url = f"{session.ws_url.rstrip('/')}/?token={urllib.parse.quote(session.access_token())}"
    with connect(url, open_timeout=5, proxy=None, compression=None) as ws:
        ws.send(json.dumps({"action": "subscribe", "events": ["execution.status_changed"],
                            "entity_id": execution_id}))
        while "action" not in (reply := json.loads(ws.recv(timeout=10))):
            if "error" in reply:
                raise CliError(f"subscribe refused: {reply['error'].get('message')}")
        current = _fetch(session, execution_id)
        last = current["status"]
        on_change(current)
        while last not in FINAL:
            left = _left(deadline)
            if left is not None and left <= 0:
                raise Timeout(f"execution {execution_id} is still {last}; follow it with "
                              f"`attune execution tail {execution_id}`")
            try:
                message = json.loads(ws.recv(timeout=left if left is not None else 30))
            except TimeoutError:
                continue  # quiet: a final status would have arrived; the deadline check decides
            data = message.get("data") or {}
            if message.get("event") == "execution.status_changed" and data.get("status") != last:
                last = str(data["status"])
                on_change(data)
    return _fetch(session, execution_id)


def _polling(session: Session, execution_id: int, on_change: OnChange, deadline: float | None,
             *, last: str | None) -> dict[str, Any]:
    while True:
        current = _fetch(session, execution_id)
        if current["status"] != last:
            last = current["status"]
            on_change(current)
        if last in FINAL:
            return current
        left = _left(deadline)
        if left is not None and left <= 0:
            raise Timeout(f"execution {execution_id} is still {last}; follow it with "
                          f"`attune execution tail {execution_id}`")
        time.sleep(POLL_S if left is None else min(POLL_S, left))
