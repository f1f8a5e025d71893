"""The fault soak of issue 10: webhooks at 30/s while each process of the cloud is SIGKILLed once.

Every webhook the API accepted (202) must run exactly once, and nothing may be
left non-final a minute after the load: the outbox re-sends what a dead
consumer or a dead emulator lost, the pollers' short visibility returns what
a dead consumer held, the supervisor restarts every role and the emulator.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest

from chalicelib.local.harness import RunningCloud, running_cloud
from chalicelib.local.moto_server import free_port

pytestmark = pytest.mark.integration
PASSWORD = "soak-password-123"
FINAL = {"succeeded", "failed", "canceled", "succeeded_with_errors"}
EVENTS, RATE = 300, 30.0
# When (seconds into the load) each process is killed; the API last, the emulator in between.
KILLS = (("worker", 1.5), ("rules", 3.0), ("relay", 4.5), ("moto", 6.0), ("api", 7.5))


def _info(cloud: RunningCloud) -> dict[str, Any]:
    info: dict[str, Any] = json.loads((cloud.data_dir / "cloud.json").read_text())
    return info


def _kill(cloud: RunningCloud, what: str) -> int:
    info = _info(cloud)
    pid = int(info["moto_pid"] if what == "moto" else info["roles"][what])
    os.kill(pid, signal.SIGKILL)
    return pid


def test_every_accepted_webhook_runs_exactly_once_while_each_process_is_killed() -> None:
    env = {"ATTUNE_API_PORT": str(free_port()), "ATTUNE_WS_PORT": str(free_port()),
           "ATTUNE_MOTO_PORT": str(free_port())}
    with running_cloud(extra_env=env) as cloud:
        http = httpx.Client(base_url=cloud.url, timeout=10)
        name = f"soak-{uuid.uuid4().hex[:8]}"
        assert http.post("/auth/register", json={"username": name, "password": PASSWORD}).status_code == 201
        token = http.post("/auth/login", json={"username": name, "password": PASSWORD}).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        trigger = http.post("/api/v1/triggers", json={"type": "webhook"}, headers=auth).json()
        rule = {"trigger_id": trigger["id"], "action_ref": "core.echo",
                "parameters": {"message": "{{ trigger.data.n }}"}}
        assert http.post("/api/v1/rules", json=rule, headers=auth).status_code == 201

        accepted: list[str] = []
        lost_answers: list[str] = []  # the API died before answering: the event may or may not be stored
        killed: dict[str, int] = {}

        def killer(started: float) -> None:
            for what, at in KILLS:
                time.sleep(max(0.0, started + at - time.monotonic()))  # the soak's schedule, not a wait for the system
                killed[what] = _kill(cloud, what)

        # WHEN 300 webhooks arrive at 30/s and each process is SIGKILLed once meanwhile
        started = time.monotonic()
        thread = threading.Thread(target=killer, args=(started,), daemon=True)
        thread.start()
        sender = httpx.Client(base_url=cloud.url, timeout=5)
        for n in range(EVENTS):
            time.sleep(max(0.0, started + n / RATE - time.monotonic()))
            try:
                if sender.post(f"/api/v1/webhooks/{trigger['id']}", json={"n": str(n)}).status_code == 202:
                    accepted.append(str(n))
            except httpx.TransportError:
                lost_answers.append(str(n))  # down, or killed between commit and answer: nothing promised
        thread.join(30)
        assert set(killed) == {what for what, _ in KILLS}
        assert len(accepted) > EVENTS // 2, f"only {len(accepted)} of {EVENTS} webhooks were accepted"

        # THEN within 60 s every accepted webhook's execution is final, and ran exactly once
        deadline = time.monotonic() + 60
        while True:
            try:
                page = http.get("/api/v1/executions", params={"limit": 1000}, headers=auth).json()
                runs = page["items"]
                done = [e for e in runs if e["status"] in FINAL]
                if len(done) >= len(accepted) and len(done) == len(runs) and \
                        set(accepted) <= {e["parameters"]["message"] for e in runs}:
                    break
            except (httpx.TransportError, ValueError, KeyError):
                runs, done = [], []
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(done)} of {len(accepted)} accepted webhooks finished in 60 s "
                                     f"({len(runs)} executions); log {cloud.log_path}")
            time.sleep(0.5)
        counts = Counter(e["parameters"]["message"] for e in runs)
        # every accepted webhook ran; anything else that ran is one whose answer the API's death swallowed
        assert set(accepted) <= set(counts), f"accepted but never ran: {sorted(set(accepted) - set(counts))}"
        assert set(counts) <= set(accepted) | set(lost_answers), "an execution no webhook asked for"
        assert max(counts.values()) == 1, f"ran twice: {[m for m, c in counts.items() if c > 1]}"
        # AND those that failed are the few the worker was running when it was killed: failed by the
        # reaper ("worker lost"), never re-run (their action may have had side effects)
        failed = [e for e in runs if e["status"] != "succeeded"]
        errors = {http.get(f"/api/v1/executions/{e['id']}", headers=auth).json()["result"]["error"] for e in failed}
        assert all(error.startswith("worker lost") for error in errors), errors
        assert len(failed) <= 8, f"{len(failed)} failed; the worker runs at most 8 at once"
        # AND each execution's action started exactly once (no duplicate run after a redelivery)
        sample = runs[:: max(1, len(runs) // 20)]
        for execution in sample:
            trail = http.get("/api/v1/audit", params={"execution_id": execution["id"], "limit": 100},
                             headers=auth).json()["items"]
            assert [e["action"] for e in trail].count("execution.started") == 1, trail
