"""T2.9 Execution timeout policy: an action that sleeps past its `timeout` is stopped and failed.

The action-level `timeout` (5 s, as the seed sets it) starts the worker's
stop: SIGTERM to the action's process group, SIGKILL once the grace period
(ATTUNE_ACTION_GRACE_SECONDS, default 5 s) is over. The execution goes
`running` -> `failed` with an error naming the timeout and how the process
ended, an exit code naming the signal, and the output printed before the
stop. The action's processes are gone (found by a tag in their command
line, from the host, since the action runs in its own PID namespace), the
worker leaves no zombie, stays the same process, and takes new work.
The system-wide default (ATTUNE_ACTION_DEFAULT_TIMEOUT, 600 s) is not
exercised here: it would need a cloud started with another setting.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.client import Cloud, User
from tests.e2e.flow import actions_of, audit_trail, get_execution, poll, register_pack, run_action, unique_ref
from tests.helpers.procs import execution_processes
from tests.helpers.procs import tagged_processes as _alive

# Runs alone on the cloud (tests/e2e/run.py): its criterion is a timing tolerance (the timeout).
pytestmark = pytest.mark.serial

TIMEOUT_S = 5
GRACE_S = float(os.environ.get("ATTUNE_ACTION_GRACE_SECONDS", "5"))
# The seed checks 7 s after a 5 s timeout: the stop and the recording of the result fit in 2 s.
STOP_SLACK_S = 2.0

# Dies of the SIGTERM: `sleep` is the action's process (exec), tagged so the host can find it.
TERM_SH = """\
echo "partial output before the timeout"
exec -a {tag} sleep 60
"""
# Ignores the SIGTERM (and says so), so only the SIGKILL after the grace period ends it.
STUBBORN_PY = """\
import signal, time


def run():
    signal.signal(signal.SIGTERM, lambda *_: print("got SIGTERM, ignoring it", flush=True))
    print("partial output before the timeout", flush=True)
    time.sleep(60)
    print("never printed: the sleep outlived the timeout", flush=True)
"""
ECHO_SH = "echo '{\"alive\": true}'\n"


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _action(name: str, runner_type: str, code: str, **extra: Any) -> dict[str, str]:
    ext = {"python3": "py", "shell": "sh"}[runner_type]
    spec = {"name": name, "runner_type": runner_type, "entry_point": f"{name}.{ext}", **extra}
    return {f"actions/{name}.yaml": yaml.safe_dump(spec, sort_keys=False), f"actions/{name}.{ext}": code}


def _data_dir(cloud: Cloud) -> Path:
    assert cloud.log_path is not None, "this test needs the cloud the suite starts (its data dir)"
    return cloud.log_path.parent


def _worker_pid(cloud: Cloud) -> int:
    return int(json.loads((_data_dir(cloud) / "cloud.json").read_text())["roles"]["worker"])


def _zombie_children(pid: int) -> list[int]:
    """Children of `pid` that exited and were never reaped."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] == "Z" and fields[1] == str(pid):
            found.append(int(entry.name))
    return found


def _run_until_final(user: User, execution_id: int, timeout: float) -> tuple[dict[str, Any], list[str]]:
    """Poll the execution to its end; (the final execution, every status seen, in order, without repeats)."""
    seen: list[str] = []

    def probe() -> dict[str, Any] | None:
        execution = get_execution(user, execution_id)
        if not seen or seen[-1] != execution["status"]:
            seen.append(execution["status"])
        return execution if execution["status"] in ("succeeded", "failed", "canceled") else None

    return poll(probe, f"execution {execution_id} to end", user.cloud, timeout=timeout), seen


def _timed_out(cloud: Cloud, files: dict[str, str], action: str, tag: str, within_s: float) -> dict[str, Any]:
    """Register the pack, run `action`, and check what every timeout shares; the final execution."""
    user = cloud.register("t29")
    ref = unique_ref("t29")
    register_pack(user, ref, {**files, **_action("echo", "shell", ECHO_SH)})
    poll(lambda: cloud.http.get("/health").status_code == 200, "the cloud to be healthy", cloud)
    worker = _worker_pid(cloud)
    # WHEN it is executed
    resp = user.post("/api/v1/executions", {"action_ref": f"{ref}.{action}", "parameters": {}})
    assert resp.status_code == 201, resp.text
    execution_id = resp.json()["id"]
    # (by its tag on a command line, or by its execution id: a zygote-forked python3 action has the zygote's)
    running = poll(lambda: _alive(tag) or execution_processes(execution_id), "the action's process to be running",
                   cloud, timeout=30)
    execution, seen = _run_until_final(user, resp.json()["id"], timeout=TIMEOUT_S + GRACE_S + 60)
    # THEN it went running -> failed
    assert execution["status"] == "failed", execution
    assert seen[-2:] == ["running", "failed"], seen
    # AND it was stopped after the timeout, within the time the stop may take
    ran = (_at(execution["finished"]) - _at(execution["started"])).total_seconds()
    assert TIMEOUT_S <= ran <= within_s, (ran, execution)
    # AND the error names the timeout, and the output printed before the stop is kept
    result = execution["result"]
    assert f"timed out after {TIMEOUT_S}s" in (result["error"] or ""), result
    assert "partial output before the timeout" in result["stdout"], result
    assert "never printed" not in result["stdout"], result
    # AND the audit trail records the start and one completion, as failed
    trail = audit_trail(user, execution["id"])
    completed = [e for e in trail if e["action"] == "execution.completed"]
    assert actions_of(trail).count("execution.started") == 1 and len(completed) == 1, actions_of(trail)
    assert completed[0]["detail"]["status"] == "failed", completed[0]
    # AND the action's processes are gone, and the worker left no zombie behind
    poll(lambda: not _alive(tag) and not execution_processes(execution_id),
         f"the action's processes {running} to be gone",
         cloud, timeout=5)
    poll(lambda: not _zombie_children(worker), f"no unreaped child of the worker (pid {worker})", cloud, timeout=5)
    # AND the worker is the same process, and takes new work
    assert _worker_pid(cloud) == worker
    os.kill(worker, 0)  # raises if the worker died
    echo = run_action(user, f"{ref}.echo", {})
    assert echo["status"] == "succeeded" and echo["result"]["output"] == {"alive": True}, echo
    return execution


def test_an_action_that_dies_of_sigterm_fails_with_a_timeout(cloud: Cloud) -> None:
    # GIVEN a shell action with a 5 s timeout that sleeps 60 s, and dies of the SIGTERM
    tag = f"attune-t29-{uuid.uuid4().hex[:12]}"
    files = _action("sleeper", "shell", TERM_SH.format(tag=tag), timeout=TIMEOUT_S)
    execution = _timed_out(cloud, files, "sleeper", tag, within_s=TIMEOUT_S + STOP_SLACK_S)
    # THEN the SIGTERM ended it: the exit code says so, and so does the error (issue 11: "naming the signal")
    result = execution["result"]
    assert result["exit_code"] == -signal.SIGTERM, result
    assert "SIGTERM" in result["error"], result


def test_an_action_that_ignores_sigterm_is_killed_after_the_grace_period(cloud: Cloud) -> None:
    # GIVEN a python3 action with a 5 s timeout that ignores SIGTERM and sleeps 60 s
    name = f"stubborn_{uuid.uuid4().hex[:8]}"  # a cold start has the entry point on its command line: a tag
    files = _action(name, "python3", STUBBORN_PY, timeout=TIMEOUT_S)
    execution = _timed_out(cloud, files, name, name, within_s=TIMEOUT_S + GRACE_S + STOP_SLACK_S)
    # THEN it got the SIGTERM first, then the SIGKILL once the grace period was over
    result = execution["result"]
    assert "got SIGTERM, ignoring it" in result["stdout"], result
    ran = (_at(execution["finished"]) - _at(execution["started"])).total_seconds()
    assert ran >= TIMEOUT_S + GRACE_S, (ran, execution)
    assert result["exit_code"] == -signal.SIGKILL, result
    assert "SIGKILL" in result["error"], result
