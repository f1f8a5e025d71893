"""T2.11 Sequential workflow: task_a -> task_b -> task_c (the seed's `depends_on` chain of `core.echo`).

Each task outputs `{"step": n}` (as JSON text: core.echo's output is
`{"message": <text>}`) and embeds the previous task's result, so the last one
carries the whole chain. The order is proved by the children's own
timestamps (B starts after A finished, C after B) and by the workflow's
`tasks` while it runs: a task is never seen started before its dependency
succeeded.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from tests.e2e.client import Cloud, User
from tests.e2e.flow import FINAL, get_execution, poll
from tests.e2e.workflow_flow import (
    assert_sequential,
    at,
    children,
    new_pack,
    output,
    start,
    task_entries,
)

# The seed's workflow definition verbatim, then given input.
SEED_TASKS = """\
tasks:
- name: task_a
  action: core.echo
- name: task_b
  action: core.echo
  depends_on: [task_a]
- name: task_c
  action: core.echo
  depends_on: [task_b]
"""
INPUT = {
    "task_a": {"message": '{"step": 1}'},
    "task_b": {"message": '{"step": 2, "after": {{ task_a.result.message }} }'},
    "task_c": {"message": '{"step": 3, "after": {{ task_b.result.message }} }'},
}
ORDER = ["task_a", "task_b", "task_c"]
STARTED = {"running", "paused", "succeeded", "failed", "canceled"}


def _workflow(user: User) -> str:
    definition = yaml.safe_load(SEED_TASKS)
    for task in definition["tasks"]:
        task["input"] = INPUT[task["name"]]
    pack = new_pack(user, "t211")
    definition["output"] = {"last": "{{ task_c.result.message }}"}
    resp = user.post("/api/v1/actions", {"ref": f"{pack}.sequence", "pack": pack, "runner_type": "workflow",
                                         "workflow": definition})
    assert resp.status_code == 201, resp.text
    return f"{pack}.sequence"


def test_tasks_run_in_dependency_order(cloud: Cloud) -> None:
    user = cloud.register("t211")
    ref = _workflow(user)
    workflow_id = start(user, ref)

    # WHILE it runs, every view of its tasks is a prefix of succeeded tasks, then at most one started
    snapshots: list[list[str]] = []
    last: list[dict[str, Any]] = []

    def finished() -> dict[str, Any] | None:
        execution = get_execution(user, workflow_id)
        last[:] = [execution]
        if execution.get("tasks") is not None:
            snapshots.append([t["status"] for t in execution["tasks"]])
        return execution if execution["status"] in FINAL else None

    try:
        workflow = poll(finished, f"workflow {workflow_id} to finish", cloud)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nexecution: {last}") from None
    assert workflow["status"] == "succeeded", str(workflow)
    for statuses in snapshots:
        assert len(statuses) == 3, str(statuses)
        for i in range(1, 3):
            if statuses[i] in STARTED:
                assert statuses[i - 1] == "succeeded", (ORDER[i], snapshots)

    # THEN three children, listed oldest first, one per task, each a child of the workflow
    listed = user.get("/api/v1/executions", params={"parent_execution_id": workflow_id}).json()["items"]
    assert [k["task_name"] for k in listed] == ORDER, str(listed)
    kids = children(user, workflow_id)
    assert [k["task_name"] for k in kids] == ORDER and all(k["action_ref"] == "core.echo" for k in kids), str(kids)
    # AND each started only after the one before it finished
    assert_sequential(kids)
    # AND each output its step, having read the previous task's result
    steps = [json.loads(output(k)["message"]) for k in kids]
    assert steps[0] == {"step": 1}, str(steps)
    assert steps[1] == {"step": 2, "after": {"step": 1}}, str(steps)
    assert steps[2] == {"step": 3, "after": {"step": 2, "after": {"step": 1}}}, str(steps)
    assert json.loads(output(workflow)["last"]) == steps[2]
    # AND the workflow took at least the sum of its tasks' times, and ended after the last
    busy = sum((at(k["finished"]) - at(k["started"])).total_seconds() for k in kids)
    assert (at(workflow["finished"]) - at(workflow["started"])).total_seconds() >= busy
    assert at(workflow["finished"]) >= at(kids[-1]["finished"])
    assert [t["status"] for t in workflow["tasks"]] == ["succeeded"] * 3
    assert [task_entries(workflow)[n]["executions"] for n in ORDER] == [[k["id"]] for k in kids]
