"""T3.12 Worker crash recovery: SIGKILL the real worker process while its action runs.

The worker's pid comes from `<data_dir>/cloud.json` (the audit log's
`worker:host:pid:slot` proves it is the one running the action). After the
kill the action's processes die with it, the execution is still `running`
(nobody has noticed yet), and the reaper fails it with "worker lost" once its
heartbeat is older than ATTUNE_REAPER_STALE_SECONDS (30 s) — checked every
5 s — never leaving it stuck. The supervisor starts a new worker (a new pid),
which takes the executions submitted while no worker ran (none is lost) and
new ones after. The test leaves the cloud healthy for the tests after it.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.client import Cloud, User
from tests.e2e.flow import (
    actions_of,
    audit_trail,
    get_execution,
    poll,
    register_pack,
    run_action,
    unique_ref,
    wait_final,
)
from tests.helpers.procs import tagged_processes as _alive

# Runs alone on the cloud (tests/e2e/run.py): it kills the cloud's worker.
pytestmark = pytest.mark.serial

STALE_S = float(os.environ.get("ATTUNE_REAPER_STALE_SECONDS", "30"))
HEARTBEAT_S = float(os.environ.get("ATTUNE_HEARTBEAT_SECONDS", "2"))
REAPER_PERIOD_S = 5.0
# The stale window, one reaper period, and a margin for the sweep and the poll.
LOST_WITHIN_S = STALE_S + REAPER_PERIOD_S + 20
RECOVERY_TIMEOUT_S = 90.0

SLEEPER_SH = """\
echo "started, sleeping"
exec -a {tag} sleep 300
"""
ECHO_SH = "echo '{\"alive\": true}'\n"


def _action(name: str, code: str) -> dict[str, str]:
    spec = {"name": name, "runner_type": "shell", "entry_point": f"{name}.sh"}
    return {f"actions/{name}.yaml": yaml.safe_dump(spec), f"actions/{name}.sh": code}


def _data_dir(cloud: Cloud) -> Path:
    assert cloud.log_path is not None, "this test needs the cloud the suite starts (its data dir)"
    return cloud.log_path.parent


def _worker_pid(cloud: Cloud) -> int | None:
    pid = json.loads((_data_dir(cloud) / "cloud.json").read_text())["roles"].get("worker")
    return int(pid) if pid else None


def _healthy(cloud: Cloud) -> None:
    poll(lambda: cloud.http.get("/health").status_code == 200, "the cloud to be healthy", cloud,
         timeout=RECOVERY_TIMEOUT_S)


def _start(user: User, action_ref: str) -> int:
    resp = user.post("/api/v1/executions", {"action_ref": action_ref, "parameters": {}})
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


def _started_by(user: User, execution_id: int) -> str:
    """The `worker:host:pid:slot` that started the execution."""
    started = [e for e in audit_trail(user, execution_id) if e["action"] == "execution.started"]
    assert len(started) == 1, started
    return str(started[0]["actor"])


def _pid_of(actor: str) -> int:
    return int(actor.split(":")[2])


def test_a_killed_worker_loses_its_execution_and_is_replaced(cloud: Cloud) -> None:
    # GIVEN a long-running action (300 s), running on the worker
    user = cloud.register("t312")
    tag = f"attune-t312-{uuid.uuid4().hex[:12]}"
    ref = unique_ref("t312")
    register_pack(user, ref, {**_action("sleeper", SLEEPER_SH.format(tag=tag)), **_action("echo", ECHO_SH)})
    _healthy(cloud)
    try:
        old = _worker_pid(cloud)
        assert old is not None
        execution_id = _start(user, f"{ref}.sleeper")
        poll(lambda: get_execution(user, execution_id)["status"] == "running" and _alive(tag),
             "the action to run", cloud)
        assert _pid_of(_started_by(user, execution_id)) == old, "the action runs on another worker process"

        # WHEN the worker process is killed with SIGKILL
        os.kill(old, signal.SIGKILL)
        killed_at = time.monotonic()

        # THEN the action's processes die with it
        poll(lambda: not _alive(tag), "the action to die with its worker", cloud, timeout=10)
        # AND the execution is still `running`: nobody has noticed yet (the seed's step 3)
        assert get_execution(user, execution_id)["status"] == "running"
        # AND executions submitted while no worker may run are kept for the next one
        during = [_start(user, f"{ref}.echo") for _ in range(3)]

        # AND the execution ends `failed` with "worker lost" within the stale window, never anything else
        seen: list[str] = []

        def probe() -> dict[str, Any] | None:
            execution = get_execution(user, execution_id)
            if not seen or seen[-1] != execution["status"]:
                seen.append(execution["status"])
            return execution if execution["status"] not in ("running", "canceling") else None

        execution = poll(probe, f"execution {execution_id} to be reaped", cloud, timeout=LOST_WITHIN_S)
        lost_after = time.monotonic() - killed_at
        assert seen == ["running", "failed"], seen
        assert execution["result"]["error"].startswith("worker lost"), execution["result"]
        assert execution["finished"] is not None
        # (not before the heartbeat was stale: a live worker would not have been reaped)
        assert lost_after >= STALE_S - HEARTBEAT_S - 1, lost_after
        # AND the audit trail says the reaper failed it, and no worker completed it
        trail = audit_trail(user, execution_id)
        failed = [e for e in trail if e["action"] == "execution.failed"]
        assert len(failed) == 1 and failed[0]["actor"] == "service:reaper", actions_of(trail)
        assert failed[0]["detail"]["stage"] == "reaper" and failed[0]["detail"]["worker_id"].split(":")[1] == str(old)
        assert "execution.completed" not in actions_of(trail), actions_of(trail)

        # AND the supervisor started a new worker process
        new = poll(lambda: (pid := _worker_pid(cloud)) not in (None, old) and pid, "a new worker pid in cloud.json",
                   cloud, timeout=RECOVERY_TIMEOUT_S)
        os.kill(new, 0)  # raises if it is not running
        _healthy(cloud)
        # AND it ran the executions submitted while no worker ran: none was lost
        for waiting in during:
            done = wait_final(user, waiting, timeout=RECOVERY_TIMEOUT_S)
            assert done["status"] == "succeeded" and done["result"]["output"] == {"alive": True}, done
            assert _pid_of(_started_by(user, waiting)) == new
        # AND it takes new work
        after = run_action(user, f"{ref}.echo", {})
        assert after["status"] == "succeeded" and _pid_of(_started_by(user, after["id"])) == new, after
        # AND the reaped execution stays failed (a late result could not overwrite it)
        assert get_execution(user, execution_id)["status"] == "failed"
    finally:
        _healthy(cloud)
