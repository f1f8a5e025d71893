"""T2.1 Nested workflow: parent workflow -> child workflow -> its two tasks (three levels).

The `parent_execution_id` chain is parent <- child workflow <- tasks; the
grandchildren's outputs reach the parent through the child's `output` map and
the parent's; the parent finishes only after every descendant has.
"""

from __future__ import annotations

from tests.e2e.client import Cloud
from tests.e2e.workflow_flow import (
    at,
    children,
    create_workflow,
    new_pack,
    of_task,
    output,
    run_workflow,
    task_entries,
)


def test_three_levels_and_results_propagate_up(cloud: Cloud) -> None:
    user = cloud.register("t21")
    pack = new_pack(user, "t21")
    # GIVEN a child workflow with two tasks, the second reading the first, and an output map
    child_ref = create_workflow(
        user, pack, "child",
        [
            {"name": "task_1", "action": "core.echo", "input": {"message": "{{ parameters.word }}-one"}},
            {"name": "task_2", "action": "core.echo", "depends_on": ["task_1"],
             "input": {"message": "{{ task_1.result.message }}-two"}},
        ],
        parameters={"word": {"type": "string", "required": True}},
        output={"first": "{{ task_1.result.message }}", "second": "{{ task_2.result.message }}"},
    )
    # AND a parent workflow that calls it, then maps its output
    parent_ref = create_workflow(
        user, pack, "parent",
        [{"name": "inner", "action": child_ref, "input": {"word": "{{ parameters.word }}"}}],
        parameters={"word": {"type": "string", "required": True}},
        output={"nested": "{{ inner.result }}", "last": "{{ inner.result.second }}"},
    )

    # WHEN the parent runs
    parent = run_workflow(user, parent_ref, {"word": "deep"})

    # THEN it succeeds with the grandchildren's outputs, carried up by both output maps
    assert parent["status"] == "succeeded", str(parent)
    expected = {"nested": {"first": "deep-one", "second": "deep-one-two"}, "last": "deep-one-two"}
    assert output(parent) == expected, str(parent)
    assert parent["parent_execution_id"] is None

    # AND level 2: the parent's one child is the child workflow, a task of the parent
    level2 = children(user, parent["id"])
    assert len(level2) == 1, str(level2)
    child = level2[0]
    assert child["action_ref"] == child_ref and child["task_name"] == "inner", str(child)
    assert child["parent_execution_id"] == parent["id"] and child["status"] == "succeeded", str(child)
    assert output(child) == {"first": "deep-one", "second": "deep-one-two"}, str(child)

    # AND level 3: the child workflow's two tasks are children of the child, not of the parent
    level3 = children(user, child["id"])
    assert sorted(k["task_name"] for k in level3) == ["task_1", "task_2"], str(level3)
    (task_1,), (task_2,) = of_task(level3, "task_1"), of_task(level3, "task_2")
    for task in (task_1, task_2):
        assert task["parent_execution_id"] == child["id"] and task["action_ref"] == "core.echo", str(task)
        assert task["status"] == "succeeded", str(task)
    assert output(task_1) == {"message": "deep-one"} and output(task_2) == {"message": "deep-one-two"}
    assert {k["id"] for k in children(user, parent["id"])} == {child["id"]}, "grandchildren are not the parent's"

    # AND each level finished after the levels below it, in order
    assert at(task_2["started"]) >= at(task_1["finished"])
    assert at(child["finished"]) >= max(at(task_1["finished"]), at(task_2["finished"])), (child, task_1, task_2)
    assert at(parent["finished"]) >= at(child["finished"]), (parent["finished"], child["finished"])
    # AND the tree shows in the workflows' task lists
    assert task_entries(parent)["inner"]["executions"] == [child["id"]]
    assert task_entries(parent)["inner"]["status"] == "succeeded"
    child_tasks = task_entries(user.get(f"/api/v1/executions/{child['id']}").json())
    assert child_tasks["task_1"]["executions"] == [task_1["id"]]
    assert child_tasks["task_2"]["executions"] == [task_2["id"]]
