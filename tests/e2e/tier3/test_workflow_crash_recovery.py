"""Crash safety of workflows: SIGKILL the workflow handler mid-workflow and nothing is lost or doubled.

The `workflow` role handles every step a state machine sends (render the
task, request its child) and every completion callback (answer the token).
Killed between steps, its unacknowledged messages come back (SQS
visibility, the outbox's re-send) to the process the supervisor starts in
its place; every step is idempotent (one child per task token), so the
workflow finishes with each task run exactly once — never left `running`.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
from pathlib import Path

import pytest

from tests.e2e.client import Cloud
from tests.e2e.flow import get_execution, poll
from tests.e2e.workflow_flow import children, create_workflow, new_pack, start, wait_status

# Runs alone on the cloud (tests/e2e/run.py): it kills the cloud's workflow handler.
pytestmark = pytest.mark.serial

TASKS = 8
RECOVERY_S = 120.0


def _role_pid(cloud: Cloud, role: str) -> int | None:
    assert cloud.log_path is not None, "this test needs the cloud the suite starts (its data dir)"
    pid = json.loads((Path(cloud.log_path).parent / "cloud.json").read_text())["roles"].get(role)
    return int(pid) if pid else None


def test_killing_the_workflow_handler_mid_workflow_loses_and_repeats_nothing(cloud: Cloud) -> None:
    # GIVEN a sequential workflow of 8 one-second tasks, running
    user = cloud.register("wfcrash")
    pack = new_pack(user, "wfcrash")
    tasks = [{"name": f"t{i}", "action": "core.sleep", "input": {"seconds": 1},
              **({"depends_on": [f"t{i - 1}"]} if i else {})} for i in range(TASKS)]
    ref = create_workflow(user, pack, "chain", tasks)
    poll(lambda: cloud.http.get("/health").status_code == 200, "the cloud to be healthy", cloud, timeout=RECOVERY_S)
    old = _role_pid(cloud, "workflow")
    assert old is not None
    workflow_id = start(user, ref)
    # WHEN two tasks have finished, the workflow handler is killed with SIGKILL
    poll(lambda: sum(c["status"] == "succeeded" for c in children(user, workflow_id)) >= 2,
         "two tasks to finish", cloud, timeout=60)
    os.kill(old, signal.SIGKILL)
    # THEN the supervisor starts another, and the workflow still ends succeeded
    poll(lambda: _role_pid(cloud, "workflow") not in (None, old), "a new workflow handler", cloud, timeout=RECOVERY_S)
    done = wait_status(user, workflow_id, "succeeded", timeout=RECOVERY_S)
    # AND every task ran exactly once, in order
    kids = children(user, workflow_id)
    assert [k["task_name"] for k in kids] == [f"t{i}" for i in range(TASKS)], [k["task_name"] for k in kids]
    assert all(k["status"] == "succeeded" for k in kids), [(k["task_name"], k["status"]) for k in kids]
    for before, after in itertools.pairwise(kids):
        assert after["started"] >= before["finished"], (before, after)
    assert [t["status"] for t in done["tasks"]] == ["succeeded"] * TASKS
    assert get_execution(user, workflow_id)["finished"] is not None
