"""A killed AWS emulator or PostgreSQL comes back by itself; /health tells the truth meanwhile; nothing is lost.

Issue 10: a SIGKILLed moto stayed dead while /health answered 200 and webhooks answered 202,
and the events accepted meanwhile never ran until a full restart.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from typing import Any

import httpx
import pytest

from chalicelib.local.harness import RunningCloud, running_cloud
from chalicelib.local.moto_server import free_port

pytestmark = pytest.mark.integration
PASSWORD = "restart-password-1"
FINAL = {"succeeded", "failed", "canceled", "succeeded_with_errors"}


def _until(probe: Any, what: str, timeout: float, cloud: RunningCloud) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except httpx.TransportError as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last {last!r}; log {cloud.log_path}")


def _info(cloud: RunningCloud) -> dict[str, Any]:
    info: dict[str, Any] = json.loads((cloud.data_dir / "cloud.json").read_text())
    return info


def test_a_killed_emulator_and_postgres_come_back_and_nothing_accepted_is_lost() -> None:
    env = {"ATTUNE_API_PORT": str(free_port()), "ATTUNE_WS_PORT": str(free_port()),
           "ATTUNE_MOTO_PORT": str(free_port())}
    with running_cloud(extra_env=env) as cloud:
        http = httpx.Client(base_url=cloud.url, timeout=30)
        name = f"restart-{uuid.uuid4().hex[:8]}"
        assert http.post("/auth/register", json={"username": name, "password": PASSWORD}).status_code == 201
        token = http.post("/auth/login", json={"username": name, "password": PASSWORD}).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        trigger = http.post("/api/v1/triggers", json={"type": "webhook"}).json()
        rule = {"trigger_id": trigger["id"], "action_ref": "core.echo",
                "parameters": {"message": "{{ trigger.data.n }}"}}
        assert http.post("/api/v1/rules", json=rule).status_code == 201

        # WHEN the emulator is SIGKILLed
        moto_pid = _info(cloud)["moto_pid"]
        os.kill(moto_pid, signal.SIGKILL)
        # THEN /health stops answering 200 while it is down (or it is already back, with a new pid)
        _until(lambda: http.get("/health").status_code != 200 or _info(cloud)["moto_pid"] != moto_pid,
               "/health to notice the emulator is gone", 15, cloud)
        # AND webhooks accepted meanwhile are stored (the database is up) ...
        accepted = []
        for n in range(5):
            resp = http.post(f"/api/v1/webhooks/{trigger['id']}", json={"n": str(n)})
            if resp.status_code == 202:
                accepted.append(str(n))
        assert accepted, "the API still accepts webhooks while the emulator restarts"
        # ... AND the emulator is restarted with a new pid, /health green again
        _until(lambda: _info(cloud)["moto_pid"] not in (None, moto_pid), "a new emulator", 30, cloud)
        _until(lambda: http.get("/health").status_code == 200, "/health green again", 60, cloud)
        # AND every accepted event ran, exactly once (the relay re-sent what the dead queues lost)
        def done() -> list[dict[str, Any]] | None:
            items = http.get("/api/v1/executions", params={"limit": 100}).json()["items"]
            finished = [e for e in items if e["status"] in FINAL]
            return items if len(finished) == len(accepted) == len(items) else None

        runs = _until(done, "the accepted events' executions", 90, cloud)
        assert sorted(e["parameters"]["message"] for e in runs) == sorted(accepted)
        assert {e["status"] for e in runs} == {"succeeded"}

        # WHEN PostgreSQL is SIGKILLed
        pg_pid = _info(cloud)["postgres_pid"]
        os.kill(pg_pid, signal.SIGKILL)
        # THEN it comes back (a new pid) and the API serves again, with everything it held
        _until(lambda: _info(cloud)["postgres_pid"] not in (None, pg_pid), "a new PostgreSQL", 30, cloud)
        _until(lambda: http.get("/health").status_code == 200, "/health green after PostgreSQL", 60, cloud)
        resp = http.post("/api/v1/executions", json={"action_ref": "core.echo", "parameters": {"message": "after"}})
        assert resp.status_code == 201, resp.text
        after = resp.json()["id"]
        final = _until(lambda: (b := http.get(f"/api/v1/executions/{after}").json())["status"] in FINAL and b,
                       "an execution after the PostgreSQL restart", 60, cloud)
        assert final["status"] == "succeeded"
        assert http.get("/api/v1/executions").json()["total"] == len(accepted) + 1
