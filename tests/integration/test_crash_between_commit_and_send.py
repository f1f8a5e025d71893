"""A process killed between committing an execution and sending its queue message loses nothing.

A cloud of its own, started with the one-shot fault switch
`ATTUNE_FAULT_CRASH_BEFORE_SEND=<marker file>` (tests/fault_injection/sitecustomize.py,
on the cloud's PYTHONPATH; production code has no such hook): while the marker exists, the
next process that commits a message to the outbox deletes the marker and dies
(`os._exit(137)`) before sending. Here that is the API serving
`POST /api/v1/executions`; the supervisor restarts it, and the outbox relay
must send the message the dead process never did, so the execution still runs.
"""

from __future__ import annotations

import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from chalicelib.local.harness import RunningCloud, running_cloud

T = TypeVar("T")
PASSWORD = "crash-password-123"
FINAL = {"succeeded", "succeeded_with_errors", "failed", "canceled"}


def _free_ports(count: int) -> list[int]:
    """Distinct ports nothing listens on (all held open together, so none repeats)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _poll(probe: Callable[[], T | None], what: str, cloud: RunningCloud, timeout: float = 60) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = probe()
        except httpx.TransportError as exc:  # the API may be down while it restarts
            last = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last {last!r}; log {cloud.log_path}")
        time.sleep(0.1)


def _log(cloud: RunningCloud) -> str:
    return cloud.log_path.read_text(errors="replace")


@pytest.mark.integration
def test_execution_survives_a_crash_between_commit_and_send() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="attune-crash-"))
    marker = data_dir / "crash-before-send"
    api_port, ws_port, moto_port = _free_ports(3)
    env = {
        "ATTUNE_FAULT_CRASH_BEFORE_SEND": str(marker),
        "ATTUNE_API_PORT": str(api_port),
        "ATTUNE_WS_PORT": str(ws_port),
        "ATTUNE_MOTO_PORT": str(moto_port),
        # the switch lives in a test-only sitecustomize, loaded by every process of this cloud
        "PYTHONPATH": str(Path(__file__).parents[1] / "fault_injection"),
    }
    with running_cloud(extra_env=env, data_dir=data_dir) as cloud:
        http = httpx.Client(base_url=cloud.url, timeout=30)
        username = f"crash-{uuid.uuid4().hex[:8]}"
        assert http.post("/auth/register", json={"username": username, "password": PASSWORD}).status_code == 201
        token = http.post("/auth/login", json={"username": username, "password": PASSWORD}).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        message = f"survived-{uuid.uuid4().hex[:8]}"

        # GIVEN the fault switch armed
        marker.write_text("armed")
        # WHEN an execution is requested THEN the API commits it and dies before answering
        with pytest.raises(httpx.TransportError):
            http.post("/api/v1/executions", json={"action_ref": "core.echo", "parameters": {"message": message}})
        # AND it was the fault that fired (the marker is consumed, the log says where)
        assert not marker.exists()
        _poll(lambda: "dying between commit and send" in _log(cloud), "the fault's log line", cloud, timeout=10)

        # WHEN the supervisor has restarted the API
        _poll(lambda: http.get("/health").status_code == 200, "the API to be healthy again", cloud)

        # THEN the committed execution is there, exactly once
        listing = http.get("/api/v1/executions", params={"action_ref": "core.echo"})
        assert listing.status_code == 200, listing.text
        assert listing.json()["total"] == 1, listing.json()
        execution_id = listing.json()["items"][0]["id"]

        # AND it runs to success: the relay sent the message the dead process never sent
        def finished() -> dict[str, Any] | None:
            body = http.get(f"/api/v1/executions/{execution_id}").json()
            return body if body["status"] in FINAL else None

        execution = _poll(finished, f"execution {execution_id} to finish", cloud, timeout=90)
        assert execution["status"] == "succeeded", execution
        assert execution["parameters"] == {"message": message}
        assert execution["result"]["output"] == {"message": message}
        # AND it ran once
        trail = http.get("/api/v1/audit", params={"execution_id": execution_id, "limit": 1000}).json()["items"]
        assert [e["action"] for e in trail].count("execution.started") == 1, trail
        assert http.get("/api/v1/executions").json()["total"] == 1
