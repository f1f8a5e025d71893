"""T3.30 Graceful shutdown: SIGTERM to the worker role while an action of a few seconds runs.

The worker (its pid from `<data_dir>/cloud.json`) stops taking work, lets
the in-flight action finish (it succeeds with all of its output, it is not
killed), records its result, and exits 0 (the supervisor's line in the
cloud's log says so, after the execution's own line); the supervisor starts
a new worker. Executions submitted right before the SIGTERM all succeed,
whichever worker took them; those submitted once the old worker stopped
taking work are all run by the new one (the messages stayed in the queue).
The test leaves the cloud healthy for the tests after it.
"""

from __future__ import annotations

import json
import os
import re
import signal
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from tests.e2e.client import Cloud, User
from tests.e2e.flow import audit_trail, get_execution, poll, register_pack, run_action, unique_ref, wait_final

# Runs alone on the cloud (tests/e2e/run.py): it stops the cloud's worker.
pytestmark = pytest.mark.serial

ACTION_S = 6
RECOVERY_TIMEOUT_S = 90.0

SLOW_SH = """\
echo "begin"
sleep {seconds}
echo "end"
"""
ECHO_SH = "echo '{\"alive\": true}'\n"


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _action(name: str, code: str) -> dict[str, str]:
    spec = {"name": name, "runner_type": "shell", "entry_point": f"{name}.sh"}
    return {f"actions/{name}.yaml": yaml.safe_dump(spec), f"actions/{name}.sh": code}


def _data_dir(cloud: Cloud) -> Path:
    assert cloud.log_path is not None, "this test needs the cloud the suite starts (its data dir and log)"
    return cloud.log_path.parent


def _worker_pid(cloud: Cloud) -> int | None:
    pid = json.loads((_data_dir(cloud) / "cloud.json").read_text())["roles"].get("worker")
    return int(pid) if pid else None


def _log_since(cloud: Cloud, offset: int) -> str:
    assert cloud.log_path is not None
    with cloud.log_path.open("rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def _healthy(cloud: Cloud) -> None:
    poll(lambda: cloud.http.get("/health").status_code == 200, "the cloud to be healthy", cloud,
         timeout=RECOVERY_TIMEOUT_S)


def _start(user: User, action_ref: str) -> int:
    resp = user.post("/api/v1/executions", {"action_ref": action_ref, "parameters": {}})
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


def _actors(user: User, execution_id: int) -> dict[str, str]:
    """Audit action -> actor, for the worker's steps."""
    return {e["action"]: e["actor"] for e in audit_trail(user, execution_id)
            if e["action"] in ("execution.started", "execution.completed")}


def _pid_of(actor: str) -> int:
    return int(actor.split(":")[2])


def _exit_logged(cloud: Cloud, offset: int) -> str | None:
    """The log since `offset`, once the supervisor has logged the worker's exit."""
    text = _log_since(cloud, offset)
    return text if "role worker exited" in text else None


def _gone(pid: int) -> bool:
    """Whether the process has exited and been reaped (a zombie still has its /proc entry)."""
    return not Path(f"/proc/{pid}").exists()


def test_sigterm_lets_the_running_action_finish_and_keeps_the_queue(cloud: Cloud) -> None:
    # GIVEN an action of 6 s running on the worker
    user = cloud.register("t330")
    ref = unique_ref("t330")
    register_pack(user, ref, {**_action("slow", SLOW_SH.format(seconds=ACTION_S)),
                              **_action("echo", ECHO_SH)})
    _healthy(cloud)
    try:
        old = _worker_pid(cloud)
        assert old is not None
        slow = _start(user, f"{ref}.slow")
        poll(lambda: get_execution(user, slow)["status"] == "running", "the slow action to run", cloud)
        assert _pid_of(_actors(user, slow)["execution.started"]) == old
        # AND a few executions submitted right before the SIGTERM
        before = [_start(user, f"{ref}.echo") for _ in range(3)]
        assert get_execution(user, slow)["status"] == "running", "the action ended before the SIGTERM"
        offset = cloud.log_path.stat().st_size if cloud.log_path else 0

        # WHEN the worker role gets SIGTERM
        os.kill(old, signal.SIGTERM)
        # (and once it has stopped taking work, more executions are submitted)
        poll(lambda: "worker stopping:" in _log_since(cloud, offset), "the worker to stop taking work", cloud)
        after = [_start(user, f"{ref}.echo") for _ in range(3)]

        # THEN the in-flight action finishes: succeeded, all of its output, not cut short
        done = wait_final(user, slow, timeout=ACTION_S + 60)
        assert done["status"] == "succeeded", done
        result = done["result"]
        assert result["exit_code"] == 0 and result["error"] is None, result
        assert result["stdout"].split() == ["begin", "end"], result
        assert (_at(done["finished"]) - _at(done["started"])).total_seconds() >= ACTION_S, done
        # AND the old worker recorded it
        actors = _actors(user, slow)
        assert actors["execution.completed"] == actors["execution.started"], actors
        # AND the old worker exits 0, after the execution's result was recorded
        poll(lambda: _gone(old), f"the old worker (pid {old}) to exit", cloud, timeout=RECOVERY_TIMEOUT_S)
        log = poll(lambda: _exit_logged(cloud, offset), "the supervisor to log the worker's exit", cloud)
        exits = re.findall(r"role worker exited with code (-?\d+)", log)
        assert exits[:1] == ["0"], exits
        recorded = log.find(f"execution {slow} succeeded")
        assert 0 <= recorded < log.find("role worker exited"), "the worker exited before recording the action"

        # AND the supervisor starts a new worker
        new = poll(lambda: (pid := _worker_pid(cloud)) not in (None, old) and pid, "a new worker pid in cloud.json",
                   cloud, timeout=RECOVERY_TIMEOUT_S)
        _healthy(cloud)
        # AND every execution submitted around the SIGTERM succeeds: no message was lost
        for execution_id in before + after:
            finished = wait_final(user, execution_id, timeout=RECOVERY_TIMEOUT_S)
            assert finished["status"] == "succeeded", finished
            assert finished["result"]["output"] == {"alive": True}, finished
        # AND those submitted after it stopped taking work were left for the new worker
        assert [_pid_of(_actors(user, e)["execution.started"]) for e in after] == [new] * len(after)
        # AND the new worker takes new work
        fresh = run_action(user, f"{ref}.echo", {})
        assert fresh["status"] == "succeeded" and _pid_of(_actors(user, fresh["id"])["execution.started"]) == new
    finally:
        _healthy(cloud)
