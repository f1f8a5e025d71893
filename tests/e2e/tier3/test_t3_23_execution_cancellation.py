"""T3.23 Execution cancellation: `POST /api/v1/executions/{id}/cancel`.

A running action: 200 `canceling`, the worker sends SIGTERM to its process
group (the action's trap runs its cleanup), then `canceled`, with the output
printed before the cancel kept and the process gone; one that ignores
SIGTERM is SIGKILLed after the grace period. A `scheduled` one (every worker
slot busy) is `canceled` at once and never starts. A finished one is 409;
another tenant's 404; a viewer's cancel 403; an executor may cancel its own
execution but not another user's (issue 11: "executor for its own").
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from typing import Any

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
from tests.helpers.procs import execution_processes
from tests.helpers.procs import tagged_processes as _alive

GRACE_S = float(os.environ.get("ATTUNE_ACTION_GRACE_SECONDS", "5"))
HEARTBEAT_S = float(os.environ.get("ATTUNE_HEARTBEAT_SECONDS", "2"))
SLOTS = int(os.environ.get("ATTUNE_WORKER_CONCURRENCY", "8"))
# The cancel reaches the worker at its next heartbeat; stopping and recording take a second or two more.
STOP_SLACK_S = 5.0

# Traps SIGTERM to clean up; its `sleep` is tagged so the host can find it (the action has its own PID namespace).
GRACEFUL_SH = """\
trap 'echo "cleanup ran"; exit 3' TERM
echo "partial output before the cancel"
(exec -a {tag} sleep 300) &
wait $!
echo "never printed: the sleep ended on its own"
"""
STUBBORN_PY = """\
import signal, time


def run():
    signal.signal(signal.SIGTERM, lambda *_: print("got SIGTERM, ignoring it", flush=True))
    print("partial output before the cancel", flush=True)
    time.sleep(300)
"""
ECHO_SH = "echo '{\"done\": true}'\n"


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _action(name: str, runner_type: str, code: str) -> dict[str, str]:
    ext = {"python3": "py", "shell": "sh"}[runner_type]
    spec = {"name": name, "runner_type": runner_type, "entry_point": f"{name}.{ext}"}
    return {f"actions/{name}.yaml": yaml.safe_dump(spec), f"actions/{name}.{ext}": code}


def _pack(user: User, tag: str) -> str:
    """A pack with `graceful` (tagged `tag`), `stubborn_<hex>` and `echo`; its ref."""
    ref = unique_ref("t323")
    files = {**_action("graceful", "shell", GRACEFUL_SH.format(tag=tag)),
             **_action(f"stubborn_{tag.rsplit('-', 1)[1]}", "python3", STUBBORN_PY),
             **_action("echo", "shell", ECHO_SH)}
    register_pack(user, ref, files)
    return ref


def _start(user: User, action_ref: str) -> int:
    resp = user.post("/api/v1/executions", {"action_ref": action_ref, "parameters": {}})
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


def _running(user: User, execution_id: int, tag: str | None = None) -> dict[str, Any]:
    """The execution once it runs (and its tagged process is up); fails at once if it ended instead."""
    def probe() -> dict[str, Any] | None:
        execution = get_execution(user, execution_id)
        assert execution["status"] in ("requested", "scheduled", "running"), execution
        # (a tag on a cold start's command line; a zygote-forked python3 action has the zygote's: its execution)
        ready = execution["status"] == "running" and (tag is None or _alive(tag) or execution_processes(execution_id))
        return execution if ready else None

    return poll(probe, f"execution {execution_id} to run", user.cloud)


def _assert_error(resp: Any, status_code: int) -> None:
    assert resp.status_code == status_code, (resp.status_code, resp.text)
    error = resp.json()["error"]
    assert error["code"] and error["message"], error


def test_cancel_a_running_action(cloud: Cloud) -> None:
    # GIVEN a long-running action (300 s) that cleans up on SIGTERM, running
    user = cloud.register("t323")
    tag = f"attune-t323-{uuid.uuid4().hex[:12]}"
    ref = _pack(user, tag)
    execution_id = _start(user, f"{ref}.graceful")
    _running(user, execution_id, tag)
    # WHEN it is canceled
    resp = user.post(f"/api/v1/executions/{execution_id}/cancel")
    # THEN the cancel is accepted, `canceling` until the worker has stopped the action
    assert resp.status_code == 200, resp.text
    assert resp.json()["id"] == execution_id and resp.json()["status"] == "canceling", resp.json()
    # AND it ends `canceled` within the heartbeat, the grace period and a margin
    execution = wait_final(user, execution_id, timeout=HEARTBEAT_S + GRACE_S + STOP_SLACK_S)
    assert execution["status"] == "canceled", execution
    # AND the action received SIGTERM and its cleanup ran; the output printed before the cancel is kept
    result = execution["result"]
    assert "partial output before the cancel" in result["stdout"], result
    assert "cleanup ran" in result["stdout"], result
    assert "never printed" not in result["stdout"], result
    assert result["exit_code"] == 3, result  # the trap's own exit: it ended by itself, in its grace period
    assert "cancel" in (result["error"] or ""), result
    # AND its processes are gone
    poll(lambda: not _alive(tag), "the canceled action's processes to be gone", cloud, timeout=5)
    # AND the audit trail: started, cancel requested by the user, completed as canceled by the worker
    trail = audit_trail(user, execution_id)
    names = actions_of(trail)
    assert names.index("execution.started") < names.index("execution.cancel_requested") \
        < names.index("execution.completed"), names
    requested = next(e for e in trail if e["action"] == "execution.cancel_requested")
    completed = next(e for e in trail if e["action"] == "execution.completed")
    assert requested["actor"] == f"user:{user.username}", requested
    assert completed["detail"]["status"] == "canceled" and completed["actor"].startswith("worker:"), completed
    # AND canceling it again is a conflict, and leaves it as it was
    _assert_error(user.post(f"/api/v1/executions/{execution_id}/cancel"), 409)
    assert get_execution(user, execution_id)["status"] == "canceled"


def test_cancel_an_action_that_ignores_sigterm(cloud: Cloud) -> None:
    # GIVEN a python3 action that ignores SIGTERM, running (a cold start's entry point name is its tag on the host)
    user = cloud.register("t323-kill")
    tag = f"attune-t323-{uuid.uuid4().hex[:12]}"
    ref = _pack(user, tag)
    name = f"stubborn_{tag.rsplit('-', 1)[1]}"
    execution_id = _start(user, f"{ref}.{name}")
    _running(user, execution_id, name)
    # WHEN it is canceled
    resp = user.post(f"/api/v1/executions/{execution_id}/cancel")
    assert resp.status_code == 200 and resp.json()["status"] == "canceling", resp.text
    # THEN it is SIGKILLed once the grace period is over, and ends `canceled` with its partial output
    execution = wait_final(user, execution_id, timeout=HEARTBEAT_S + GRACE_S + STOP_SLACK_S)
    assert execution["status"] == "canceled", execution
    result = execution["result"]
    assert "partial output before the cancel" in result["stdout"], result
    assert "got SIGTERM, ignoring it" in result["stdout"], result
    assert result["exit_code"] == -9, result
    canceled_at = next(e for e in audit_trail(user, execution_id) if e["action"] == "execution.cancel_requested")
    assert (_at(execution["finished"]) - _at(canceled_at["at"])).total_seconds() >= GRACE_S, execution
    poll(lambda: not _alive(name) and not execution_processes(execution_id), "the killed action's process to be gone",
         cloud, timeout=5)


def test_cancel_a_scheduled_execution_before_it_starts(cloud: Cloud) -> None:
    # GIVEN every worker slot busy with a long action, and one more execution waiting, `scheduled`
    user = cloud.register("t323-queued")
    tag = f"attune-t323-{uuid.uuid4().hex[:12]}"
    ref = _pack(user, tag)
    blockers = [_start(user, f"{ref}.graceful") for _ in range(SLOTS)]
    try:
        for blocker in blockers:
            _running(user, blocker)
        waiting = _start(user, f"{ref}.echo")
        assert get_execution(user, waiting)["status"] in ("requested", "scheduled")
        # WHEN it is canceled
        resp = user.post(f"/api/v1/executions/{waiting}/cancel")
        # THEN it is `canceled` at once, without starting
        assert resp.status_code == 200, resp.text
        assert resp.json()["status"] == "canceled", resp.json()
    finally:
        for blocker in blockers:
            user.post(f"/api/v1/executions/{blocker}/cancel")
    for blocker in blockers:
        assert wait_final(user, blocker)["status"] == "canceled"
    # AND once the slots are free and the worker has taken the messages queued after it, it still never ran
    after = run_action(user, f"{ref}.echo", {})
    assert after["status"] == "succeeded", after
    execution = get_execution(user, waiting)
    assert execution["status"] == "canceled" and execution["started"] is None, execution
    names = actions_of(audit_trail(user, waiting))
    assert "execution.canceled" in names and "execution.started" not in names, names


def test_cancel_a_finished_execution_is_a_conflict(cloud: Cloud) -> None:
    # GIVEN a finished execution
    user = cloud.register("t323-done")
    done = run_action(user, "core.echo", {"message": "finished"})
    assert done["status"] == "succeeded", done
    # WHEN it is canceled THEN 409, and it stays as it was
    _assert_error(user.post(f"/api/v1/executions/{done['id']}/cancel"), 409)
    after = get_execution(user, done["id"])
    assert after["status"] == "succeeded" and after["result"] == done["result"]
    # AND an execution that does not exist is 404
    _assert_error(user.post("/api/v1/executions/999999999/cancel"), 404)


def test_who_may_cancel(cloud: Cloud) -> None:
    # GIVEN tenant A's running action, A's viewer and executor, and another tenant B
    a = cloud.register("t323-a")
    tag = f"attune-t323-{uuid.uuid4().hex[:12]}"
    ref = _pack(a, tag)
    execution_id = _start(a, f"{ref}.graceful")
    _running(a, execution_id, tag)
    viewer, b = a.add_user("viewer"), cloud.register("t323-b")
    try:
        # WHEN B cancels it THEN 404 (another tenant's execution does not exist for B)
        _assert_error(b.post(f"/api/v1/executions/{execution_id}/cancel"), 404)
        # WHEN A's viewer cancels it THEN 403
        _assert_error(viewer.post(f"/api/v1/executions/{execution_id}/cancel"), 403)
        # AND neither changed anything: it is still running, its action still alive
        assert get_execution(a, execution_id)["status"] == "running"
        assert _alive(tag)
    finally:
        a.post(f"/api/v1/executions/{execution_id}/cancel")
    assert wait_final(a, execution_id)["status"] == "canceled"


def test_an_executor_cancels_its_own_execution_only(cloud: Cloud) -> None:
    # GIVEN an admin's running action and an executor's running action, in one tenant
    admin = cloud.register("t323-exec")
    executor = admin.add_user("executor")
    tag, own_tag = (f"attune-t323-{uuid.uuid4().hex[:12]}" for _ in range(2))
    admins = _start(admin, f"{_pack(admin, tag)}.graceful")
    owns = _start(executor, f"{_pack(admin, own_tag)}.graceful")
    _running(admin, admins, tag)
    _running(admin, owns, own_tag)
    try:
        # WHEN the executor cancels its own THEN it is accepted
        resp = executor.post(f"/api/v1/executions/{owns}/cancel")
        assert resp.status_code == 200 and resp.json()["status"] == "canceling", resp.text
        assert wait_final(admin, owns)["status"] == "canceled"
        # WHEN it cancels the admin's THEN 403, and the admin's keeps running
        _assert_error(executor.post(f"/api/v1/executions/{admins}/cancel"), 403)
        assert get_execution(admin, admins)["status"] == "running"
    finally:
        admin.post(f"/api/v1/executions/{admins}/cancel")
    wait_final(admin, admins)
