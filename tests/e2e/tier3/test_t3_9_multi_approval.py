"""T3.9 Multi-step approval: a workflow pauses twice, for a manager and then for security.

Attune's roles stand in for the seed's people: the manager's inquiry may be
answered by `editor`s, security's by `executor`s (each answer by the other is
a 403). The workflow pauses at the first inquiry, resumes on its answer,
pauses again at the second (which did not exist before), resumes, and its
last task sees both answers.
"""

from __future__ import annotations

from tests.e2e.client import Cloud
from tests.e2e.workflow_flow import (
    RETURN_PARAMS_PY,
    answer,
    at,
    children,
    create_workflow,
    inquiries,
    new_pack,
    of_task,
    output,
    pack_action,
    respond,
    start,
    task_entries,
    untyped,
    wait_done,
    wait_inquiry,
    wait_status,
)

SCHEMA = {
    "type": "object",
    "properties": {"approved": {"type": "boolean"}, "comment": {"type": "string"}},
    "required": ["approved"],
}


def test_two_approvals_in_sequence(cloud: Cloud) -> None:
    admin = cloud.register("t39")
    manager, security = admin.add_user("editor"), admin.add_user("executor")
    pack = new_pack(admin, "t39", pack_action("deploy", "python3", RETURN_PARAMS_PY,
                                              untyped("manager", "manager_comment", "security", "change")))
    ref = create_workflow(admin, pack, "change", [
        {"name": "request", "action": "core.echo", "input": {"message": "change {{ parameters.change }}"}},
        {"name": "manager_approval", "depends_on": ["request"],
         "inquiry": {"prompt": "Manager: approve the change?", "schema": SCHEMA, "ttl": 600, "roles": ["editor"]}},
        {"name": "security_approval", "depends_on": ["manager_approval"],
         "inquiry": {"prompt": "Security: approve the change?", "schema": SCHEMA, "ttl": 600,
                     "roles": ["executor"]}},
        {"name": "deploy", "action": f"{pack}.deploy", "depends_on": ["security_approval"],
         "input": {"manager": "{{ manager_approval.result }}", "security": "{{ security_approval.result }}",
                   "manager_comment": "{{ manager_approval.result.comment }}",
                   "change": "{{ request.result.message }}"}},
    ], parameters={"change": {"type": "string", "required": True}},
       output={"manager": "{{ manager_approval.result.approved }}",
               "security": "{{ security_approval.result.approved }}"})

    workflow_id = start(admin, ref, {"change": "CHG-7"})
    # THEN it pauses at the manager's inquiry; security's does not exist yet
    workflow = wait_status(admin, workflow_id, "paused")
    first = wait_inquiry(admin, workflow_execution_id=workflow_id)
    assert first["prompt"] == "Manager: approve the change?" and first["roles"] == ["editor"], str(first)
    tasks = task_entries(workflow)
    assert tasks["manager_approval"]["status"] == "paused", str(workflow["tasks"])
    assert tasks["security_approval"]["status"] == "pending" and tasks["deploy"]["status"] == "pending"
    assert [i["id"] for i in inquiries(admin) if i.get("workflow_execution_id") == workflow_id] == [first["id"]]
    # AND only a manager may answer it
    assert respond(security, first["id"], {"approved": True}).status_code == 403
    first = answer(manager, first["id"], {"approved": True, "comment": "ok from manager"})
    assert first["status"] == "responded" and first["responded_by"] == manager.username, str(first)

    # THEN the workflow resumes and pauses again, at security's inquiry
    second = wait_inquiry(admin, workflow_execution_id=workflow_id, exclude=[first["id"]])
    assert second["id"] != first["id"] and second["roles"] == ["executor"], str(second)
    assert second["prompt"] == "Security: approve the change?", str(second)
    assert at(second["created"]) >= at(first["responded_at"])
    workflow = wait_status(admin, workflow_id, "paused")
    kids = children(admin, workflow_id)
    (manager_step,) = of_task(kids, "manager_approval")
    assert manager_step["status"] == "succeeded" and output(manager_step) == {"approved": True,
                                                                            "comment": "ok from manager"}
    assert of_task(kids, "deploy") == [], "the last task waits for the second approval"
    assert task_entries(workflow)["security_approval"]["status"] == "paused"
    # AND only security may answer it
    assert respond(manager, second["id"], {"approved": True}).status_code == 403
    second = answer(security, second["id"], {"approved": True, "comment": "scanned"})
    assert second["responded_by"] == security.username

    # THEN the workflow completes, and its last task saw both answers
    workflow = wait_done(admin, workflow_id)
    assert workflow["status"] == "succeeded", str(workflow)
    (deploy,) = of_task(children(admin, workflow_id), "deploy")
    assert deploy["parameters"] == {
        "manager": {"approved": True, "comment": "ok from manager"},
        "security": {"approved": True, "comment": "scanned"},
        "manager_comment": "ok from manager",
        "change": "change CHG-7",
    }, deploy
    assert at(deploy["started"]) >= at(second["responded_at"])
    assert output(workflow) == {"manager": True, "security": True}, str(workflow)
    assert inquiries(admin, status="pending") == []
