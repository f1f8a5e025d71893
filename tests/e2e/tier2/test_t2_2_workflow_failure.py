"""T2.2 Workflow failure handling: a task fails under `on_failure` abort, continue, retry.

Three tasks, the second failing. `abort` (also the default): the third never
starts (no child execution for it), running tasks are canceled, the workflow
`failed` with an error naming the task. `continue`: the third still runs, the
workflow `succeeded_with_errors`. `retry`: every retry is a new child
execution of the task, so a task that fails twice and then succeeds has three
children, and one that never succeeds has 1 + retries.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest

from tests.e2e.client import Cloud, User
from tests.e2e.workflow_flow import (
    FAIL_SH,
    at,
    children,
    create_workflow,
    new_pack,
    of_task,
    output,
    pack_action,
    run_workflow,
    start,
    task_entries,
    wait_done,
    wait_status,
)

# Counts its attempts in the datastore (the only state that outlives a child execution) and fails
# until it has failed `fail_times` times.
FLAKY_PY = """\
import sys
import attune_action


def run(key, fail_times):
    seen = (attune_action.datastore_get(key) or 0) + 1
    attune_action.datastore_set(key, seen)
    if seen <= fail_times:
        print(f"attempt {seen} fails", file=sys.stderr)
        sys.exit(1)
    return {"attempt": seen}
"""


def _pack(user: User, prefix: str) -> str:
    return new_pack(user, prefix, {
        **pack_action("fail", "shell", FAIL_SH),
        **pack_action("flaky", "python3", FLAKY_PY,
                      {"key": {"type": "string", "required": True},
                       "fail_times": {"type": "integer", "required": True}}),
    })


def _three_tasks(pack: str, policy: str | None) -> list[dict[str, Any]]:
    second: dict[str, Any] = {"name": "second", "action": f"{pack}.fail", "depends_on": ["first"]}
    if policy is not None:
        second["on_failure"] = policy
    return [
        {"name": "first", "action": "core.echo", "input": {"message": "one"}},
        second,
        {"name": "third", "action": "core.echo", "depends_on": ["second"], "input": {"message": "three"}},
    ]


@pytest.mark.parametrize("policy", ["abort", None], ids=["abort", "default-is-abort"])
def test_abort_stops_the_workflow(cloud: Cloud, policy: str | None) -> None:
    user = cloud.register("t22-abort")
    pack = _pack(user, "t22a")
    ref = create_workflow(user, pack, "wf", _three_tasks(pack, policy))
    # WHEN the workflow runs and its second task fails
    workflow = run_workflow(user, ref)
    # THEN the workflow failed, its error naming the task that failed
    assert workflow["status"] == "failed", str(workflow)
    error = workflow["result"]["error"]
    assert error and "second" in error, str(workflow["result"])
    kids = children(user, workflow["id"])
    # AND the first task succeeded, the second failed (the action's own failure), the third never started
    (first,), (second,) = of_task(kids, "first"), of_task(kids, "second")
    assert first["status"] == "succeeded" and output(first) == {"message": "one"}, str(first)
    assert second["status"] == "failed" and second["result"]["exit_code"] == 3, str(second)
    assert "task failed on purpose" in second["result"]["stderr"], str(second)
    assert of_task(kids, "third") == [] and len(kids) == 2, str(kids)
    tasks = task_entries(workflow)
    assert [t["name"] for t in workflow["tasks"]] == ["first", "second", "third"]
    assert tasks["first"]["status"] == "succeeded" and tasks["second"]["status"] == "failed", str(tasks)
    assert tasks["third"]["status"] == "pending" and tasks["third"]["executions"] == [], str(tasks)
    # AND the workflow ended after the failure
    assert at(workflow["finished"]) >= at(second["finished"])


def test_abort_cancels_running_tasks(cloud: Cloud) -> None:
    user = cloud.register("t22-cancel")
    pack = _pack(user, "t22c")
    # GIVEN a long task running beside one that fails
    ref = create_workflow(user, pack, "wf", [
        {"name": "slow", "action": "core.sleep", "input": {"seconds": 30}},
        {"name": "boom", "action": f"{pack}.fail"},
    ])
    workflow_id = start(user, ref)
    # WHEN the failing task aborts the workflow
    workflow = wait_done(user, workflow_id, timeout=25)
    # THEN the workflow failed without waiting for the long task, which was canceled
    assert workflow["status"] == "failed" and "boom" in workflow["result"]["error"], str(workflow)
    (slow,) = of_task(children(user, workflow_id), "slow")
    slow = wait_status(user, slow["id"], "canceled", timeout=20)
    assert task_entries(workflow)["boom"]["status"] == "failed"


def test_continue_runs_the_rest(cloud: Cloud) -> None:
    user = cloud.register("t22-cont")
    pack = _pack(user, "t22n")
    ref = create_workflow(user, pack, "wf", _three_tasks(pack, "continue"))
    # WHEN the second task fails under `continue`
    workflow = run_workflow(user, ref)
    # THEN the workflow ends succeeded_with_errors
    assert workflow["status"] == "succeeded_with_errors", str(workflow)
    kids = children(user, workflow["id"])
    (first,), (second,), (third,) = (of_task(kids, n) for n in ("first", "second", "third"))
    # AND the first succeeded, the second failed, the third still ran, after the second, and succeeded
    assert first["status"] == "succeeded", str(first)
    assert second["status"] == "failed" and second["result"]["exit_code"] == 3, str(second)
    assert third["status"] == "succeeded" and output(third) == {"message": "three"}, str(third)
    assert at(third["started"]) >= at(second["finished"])
    tasks = task_entries(workflow)
    assert [tasks[n]["status"] for n in ("first", "second", "third")] == ["succeeded", "failed", "succeeded"]


def test_retry_until_the_task_succeeds(cloud: Cloud) -> None:
    user = cloud.register("t22-retry")
    pack = _pack(user, "t22r")
    # GIVEN a task that fails twice before it succeeds, under `retry` with 3 retries
    ref = create_workflow(user, pack, "wf", [
        {"name": "first", "action": "core.echo", "input": {"message": "one"}},
        {"name": "flaky", "action": f"{pack}.flaky", "depends_on": ["first"],
         "input": {"key": "t22_attempts", "fail_times": 2},
         "on_failure": "retry", "retry": {"max_attempts": 3, "delay_seconds": 1, "backoff_multiplier": 1.0}},
        {"name": "third", "action": "core.echo", "depends_on": ["flaky"],
         "input": {"message": "after attempt {{ flaky.result.attempt }}"}},
    ])
    workflow = run_workflow(user, ref)
    # THEN the workflow succeeds on the task's third attempt
    assert workflow["status"] == "succeeded", str(workflow)
    kids = children(user, workflow["id"])
    attempts = of_task(kids, "flaky")
    # AND each attempt was its own child execution: two failed, then one succeeded
    assert [k["status"] for k in attempts] == ["failed", "failed", "succeeded"], str(attempts)
    assert output(attempts[-1]) == {"attempt": 3}
    for before, after in pairwise(attempts):
        assert at(after["started"]) >= at(before["finished"]), (before, after)
    assert task_entries(workflow)["flaky"]["executions"] == [k["id"] for k in attempts]
    # AND the dependent task saw the successful attempt's result
    (third,) = of_task(kids, "third")
    assert output(third) == {"message": "after attempt 3"}, str(third)
    assert user.get("/api/v1/datastore/t22_attempts").json()["value"] == 3


def test_retry_gives_up_after_the_default_retries(cloud: Cloud) -> None:
    user = cloud.register("t22-giveup")
    pack = _pack(user, "t22g")
    # GIVEN a task that never succeeds, under `retry` with the default policy (3 retries, 1 s doubling)
    ref = create_workflow(user, pack, "wf", [
        {"name": "never", "action": f"{pack}.flaky", "input": {"key": "t22_never", "fail_times": 99},
         "on_failure": "retry"},
        {"name": "after", "action": "core.echo", "depends_on": ["never"], "input": {"message": "unreachable"}},
    ])
    workflow = run_workflow(user, ref)
    # THEN after 1 + 3 attempts, each a child execution, the workflow aborts naming the task
    assert workflow["status"] == "failed" and "never" in workflow["result"]["error"], str(workflow)
    kids = children(user, workflow["id"])
    attempts = of_task(kids, "never")
    assert [k["status"] for k in attempts] == ["failed"] * 4, str(attempts)
    assert of_task(kids, "after") == [], str(kids)
    assert user.get("/api/v1/datastore/t22_never").json()["value"] == 4
    # AND the retries waited ~1 s, 2 s, 4 s (generous bounds: the order of magnitude, not the exact delay)
    gaps = [(at(b["started"]) - at(a["finished"])).total_seconds() for a, b in pairwise(attempts)]
    assert gaps[0] >= 0.8 and gaps[1] >= 1.6 and gaps[2] >= 3.2, str(gaps)
