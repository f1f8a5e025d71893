"""Notification latency: an execution's status commit → a WebSocket client's receipt, over 200 executions.

One tenant, one real WebSocket client (websockets' sync client, a reader
thread stamping each message with `time.time()` as it arrives) subscribed to
execution events; `core.noop` executions started over HTTP at a paced rate
(10/s by default, below what one local worker sustains, so the figure is the
notification path's own, not queueing behind a burst). Each execution is
notified four times (requested, scheduled, running, succeeded); a sample is
`receipt - timestamp`, where `timestamp` is taken in the transaction that
commits the change (millisecond precision) on the same machine's clock. The
path measured: commit → outbox relay → SQS (moto) → notifier → the
gateway's `@connections` → the socket. Also reported: whether every change
arrived, and in order.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.parse
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from bench.api_latency import _summary

PASSWORD = "bench-password-123"  # noqa: S105 - a throwaway user of a throwaway cloud
STATUSES = ["requested", "scheduled", "running", "succeeded"]
TARGETS = {"seed_commit_to_client_ms": 100, "ours_commit_to_client_p95_ms": 20}


def ws_url(url: str, data_dir: Path | None = None) -> str:
    """The cloud's WebSocket URL: ATTUNE_BENCH_WS_URL, its cloud.json, or ATTUNE_WS_PORT on the API's host."""
    given = os.environ.get("ATTUNE_BENCH_WS_URL")
    if given:
        return given.rstrip("/")
    info = data_dir / "cloud.json" if data_dir is not None else None
    if info is not None and info.exists():
        return str(json.loads(info.read_text())["ws_url"])
    host = urllib.parse.urlsplit(url).hostname or "127.0.0.1"
    return f"ws://{host}:{os.environ.get('ATTUNE_WS_PORT', '18081')}"


def _epoch(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _token(http: httpx.Client) -> str:
    username = f"bench-ws-{uuid.uuid4().hex[:8]}"
    resp = http.post("/auth/register", json={"username": username, "password": PASSWORD})
    if resp.status_code != 201:
        raise RuntimeError(f"register answered {resp.status_code}: {resp.text}")
    return str(http.post("/auth/login", json={"username": username, "password": PASSWORD}).json()["access_token"])


def run(url: str, data_dir: Path | None = None, *, executions: int = 200, rate: float = 10.0,
        drain_s: float = 120.0) -> dict[str, Any]:
    """Measure commit→client latency p50/p95 of execution notifications; returns the JSON-able result."""
    http = httpx.Client(base_url=url, timeout=30)
    http.headers["Authorization"] = f"Bearer {_token(http)}"
    received: list[tuple[float, dict[str, Any]]] = []
    done = threading.Event()
    token = str(http.headers["Authorization"]).removeprefix("Bearer ")
    with connect(f"{ws_url(url, data_dir)}/?token={urllib.parse.quote(token)}", proxy=None, compression=None) as ws:
        ws.send(json.dumps({"action": "subscribe", "events": ["execution.status_changed"]}))
        json.loads(ws.recv(timeout=10))  # subscribed: from here on, the subscription applies

        def read() -> None:
            try:
                for raw in ws:
                    received.append((time.time(), json.loads(raw)))
            except ConnectionClosed:
                pass
            done.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        ids: list[int] = []
        started = time.monotonic()
        for i in range(executions):
            time.sleep(max(0.0, started + i / rate - time.monotonic()))
            resp = http.post("/api/v1/executions", json={"action_ref": "core.noop", "parameters": {}})
            if resp.status_code != 201:
                raise RuntimeError(f"POST /executions answered {resp.status_code}: {resp.text}")
            ids.append(int(resp.json()["id"]))
        deadline = time.monotonic() + drain_s
        expected = len(ids) * len(STATUSES)
        while sum(1 for _, m in received if m.get("event")) < expected and time.monotonic() < deadline:
            time.sleep(0.1)
        ws.close()
        reader.join(5)
    notes = [(at, m) for at, m in received if m.get("event") == "execution.status_changed"]
    samples = [(at - _epoch(m["timestamp"])) * 1000 for at, m in notes]
    by_execution: dict[int, list[str]] = {}
    for _, m in notes:
        by_execution.setdefault(int(m["entity_id"]), []).append(str(m["data"]["status"]))
    in_order = sum(1 for i in ids if by_execution.get(i) == STATUSES)
    latency = _summary(samples) if samples else {"n": 0}
    return {
        "benchmark": "notifications",
        "targets": TARGETS,
        "met": {
            "seed_commit_to_client_ms": bool(samples) and latency["p95_ms"] < TARGETS["seed_commit_to_client_ms"],
            "ours_commit_to_client_p95_ms": bool(samples)
            and latency["p95_ms"] < TARGETS["ours_commit_to_client_p95_ms"],
        },
        "results": {
            "executions": len(ids),
            "rate_per_s": rate,
            "notifications_expected": len(ids) * len(STATUSES),
            "notifications_received": len(notes),
            "executions_notified_completely_in_order": in_order,
            "commit_to_client": latency,
        },
        "notes": ("commit = the notification's timestamp, taken in the transaction that commits the status "
                  "(millisecond precision); client = time.time() when the WebSocket client read the message; "
                  "same machine, one clock"),
    }
