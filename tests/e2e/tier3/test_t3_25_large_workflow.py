"""T3.25 Large workflow: 100 sequential tasks, each echoing its number.

All 100 run, as 100 children of the workflow, strictly in order (by task and
by their own timestamps), and the workflow succeeds with every task's result
by name (it has no output map). Time is not a criterion: a generous deadline.
The seed's "memory usage scales linearly" is not measured here (the benchmarks
sample the cloud's memory; an e2e assertion on it would be noise).
"""

from __future__ import annotations

from typing import Any

from tests.e2e.client import Cloud
from tests.e2e.workflow_flow import (
    assert_sequential,
    children,
    create_workflow,
    new_pack,
    output,
    run_workflow,
)

COUNT = 100
DEADLINE_S = 240


def _name(n: int) -> str:
    return f"task_{n:03d}"


def test_hundred_sequential_tasks(cloud: Cloud) -> None:
    user = cloud.register("t325")
    pack = new_pack(user, "t325")
    tasks: list[dict[str, Any]] = []
    for n in range(1, COUNT + 1):
        task: dict[str, Any] = {"name": _name(n), "action": "core.echo", "input": {"message": str(n)}}
        if n > 1:
            task["depends_on"] = [_name(n - 1)]
        tasks.append(task)
    ref = create_workflow(user, pack, "hundred", tasks)

    # WHEN the workflow runs
    workflow = run_workflow(user, ref, timeout=DEADLINE_S)

    # THEN it succeeds
    assert workflow["status"] == "succeeded", {k: workflow[k] for k in ("status", "result")}
    # AND every task ran once, as a child of the workflow, and succeeded
    kids = children(user, workflow["id"])
    assert len(kids) == COUNT, len(kids)
    assert all(k["parent_execution_id"] == workflow["id"] and k["status"] == "succeeded" for k in kids)
    # AND in order: created in task order, each started after the one before it finished
    assert [k["task_name"] for k in kids] == [_name(n) for n in range(1, COUNT + 1)]
    assert_sequential(kids)
    # AND each echoed its own number
    assert [output(k) for k in kids] == [{"message": str(n)} for n in range(1, COUNT + 1)]
    # AND the workflow's result holds each task's result by name, and its task list all 100, in order
    result = output(workflow)
    assert isinstance(result, dict) and len(result) == COUNT, str(result)
    assert result[_name(42)] == {"message": "42"} and result[_name(COUNT)] == {"message": str(COUNT)}
    assert [t["name"] for t in workflow["tasks"]] == [_name(n) for n in range(1, COUNT + 1)]
    assert all(t["status"] == "succeeded" and len(t["executions"]) == 1 for t in workflow["tasks"])
