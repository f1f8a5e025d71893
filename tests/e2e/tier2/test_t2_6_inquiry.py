"""T2.6 Approval workflow (inquiry): the execution pauses until a human answers.

An inquiry task in a workflow and the standalone `core.ask` action: the
execution is `paused`, the inquiry `pending` with `timeout_at` set; a valid
answer makes it `responded` (with `responded_by`), the execution resumes and a
later task receives the answer. Schemas: yes/no, a multi-field form, a
multiple choice (enum). An invalid answer is a 400 naming the field, a second
answer a 409, a role not in `roles` a 403, another tenant's inquiry a 404; an
unanswered inquiry with a default ends with the default.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.e2e.client import Cloud, User
from tests.e2e.workflow_flow import (
    RETURN_PARAMS_PY,
    at,
    children,
    create_workflow,
    error_of,
    get_inquiry,
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

YES_NO = {"type": "object", "properties": {"approved": {"type": "boolean"}}, "required": ["approved"]}
FORM = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "replicas": {"type": "integer", "minimum": 1, "maximum": 10},
        "reason": {"type": "string"},
    },
    "required": ["name", "replicas"],
}
CHOICE = {"type": "object", "properties": {"color": {"enum": ["blue", "green", "red"]}}, "required": ["color"]}


def _approval_workflow(user: User, schema: dict[str, Any], *, roles: list[str] | None = None) -> str:
    """prepare -> approve (an inquiry) -> after (receives the whole answer)."""
    pack = new_pack(user, "t26", pack_action("after", "python3", RETURN_PARAMS_PY, untyped("answer", "prepared")))
    inquiry: dict[str, Any] = {"prompt": "Ship it?", "schema": schema, "ttl": 300}
    if roles is not None:
        inquiry["roles"] = roles
    return create_workflow(user, pack, "approval", [
        {"name": "prepare", "action": "core.echo", "input": {"message": "build 42"}},
        {"name": "approve", "depends_on": ["prepare"], "inquiry": inquiry},
        {"name": "after", "action": f"{pack}.after", "depends_on": ["approve"],
         "input": {"answer": "{{ approve.result }}", "prepared": "{{ prepare.result.message }}"}},
    ], output={"answer": "{{ approve.result }}"})


def _paused_at_inquiry(user: User, ref: str) -> tuple[int, dict[str, Any]]:
    """Start the workflow and wait until it pauses on its inquiry; (workflow id, the pending inquiry)."""
    workflow_id = start(user, ref)
    workflow = wait_status(user, workflow_id, "paused")
    inquiry = wait_inquiry(user, workflow_execution_id=workflow_id)
    assert task_entries(workflow)["after"]["status"] == "pending", str(workflow["tasks"])
    return workflow_id, inquiry


def _finish(user: User, workflow_id: int, answer: dict[str, Any]) -> None:
    """The workflow resumed and ended succeeded, the later task having received the answer."""
    workflow = wait_done(user, workflow_id)
    assert workflow["status"] == "succeeded", str(workflow)
    (after,) = of_task(children(user, workflow_id), "after")
    assert after["status"] == "succeeded", str(after)
    assert after["parameters"] == {"answer": answer, "prepared": "build 42"}, str(after)
    assert output(workflow) == {"answer": answer}, str(workflow)


def test_yes_no_approval_in_a_workflow(cloud: Cloud) -> None:
    user = cloud.register("t26-yn")
    ref = _approval_workflow(user, YES_NO)
    workflow_id, inquiry = _paused_at_inquiry(user, ref)

    # THEN the inquiry is pending, with its prompt, schema and a timeout ttl seconds after creation
    shown = get_inquiry(user, inquiry["id"])
    assert shown["status"] == "pending" and shown["prompt"] == "Ship it?" and shown["schema"] == YES_NO, str(shown)
    assert shown["workflow_execution_id"] == workflow_id
    assert shown["response"] is None and shown["responded_by"] is None and shown["responded_at"] is None, str(shown)
    assert shown["timeout_at"] is not None, str(shown)
    ttl = at(shown["timeout_at"]) - at(shown["created"])
    assert timedelta(seconds=299) <= ttl <= timedelta(seconds=301), str(shown)
    # AND its own execution, a child of the workflow, is paused as well
    (asked,) = of_task(children(user, workflow_id), "approve")
    assert asked["id"] == shown["execution_id"] and asked["status"] == "paused", str(asked)
    assert asked["parent_execution_id"] == workflow_id
    assert [i["id"] for i in inquiries(user, status="pending", execution_id=asked["id"])] == [inquiry["id"]]

    # WHEN an answer of the wrong type is sent THEN 400 naming the field, and it stays pending
    bad = respond(user, inquiry["id"], {"approved": "yes"})
    assert bad.status_code == 400, bad.text
    assert "approved" in error_of(bad)
    missing = respond(user, inquiry["id"], {})
    assert missing.status_code == 400 and "approved" in error_of(missing), missing.text
    assert get_inquiry(user, inquiry["id"])["status"] == "pending"

    # WHEN the admin approves
    ok = respond(user, inquiry["id"], {"approved": True})
    assert ok.status_code == 200, ok.text
    # THEN the inquiry is responded, by that user, with the answer
    answered = get_inquiry(user, inquiry["id"])
    assert answered["status"] == "responded" and answered["response"] == {"approved": True}, str(answered)
    assert answered["responded_by"] == user.username and answered["responded_at"] is not None, str(answered)
    assert at(answered["responded_at"]) >= at(answered["created"])
    # AND a second answer is a 409, and does not change the first
    again = respond(user, inquiry["id"], {"approved": False})
    assert again.status_code == 409, again.text
    error_of(again)
    assert get_inquiry(user, inquiry["id"])["response"] == {"approved": True}
    # AND the inquiry's execution succeeded with the answer as its output, and the workflow resumed
    asked = wait_status(user, asked["id"], "succeeded")
    assert output(asked) == {"approved": True}, str(asked)
    _finish(user, workflow_id, {"approved": True})
    assert inquiries(user, status="pending") == []


def test_multi_field_form(cloud: Cloud) -> None:
    user = cloud.register("t26-form")
    ref = _approval_workflow(user, FORM)
    workflow_id, inquiry = _paused_at_inquiry(user, ref)
    # WHEN a required field is missing, or one is out of range THEN 400 naming that field
    for answer, field in (({"name": "web"}, "replicas"), ({"name": "web", "replicas": 50}, "replicas"),
                          ({"replicas": 2}, "name")):
        bad = respond(user, inquiry["id"], answer)
        assert bad.status_code == 400, (answer, bad.text)
        assert field in error_of(bad), (answer, bad.text)
    # WHEN the form is filled in THEN the later task gets every field
    answer = {"name": "web", "replicas": 3, "reason": "traffic spike"}
    assert respond(user, inquiry["id"], answer).status_code == 200
    _finish(user, workflow_id, answer)


def test_multiple_choice(cloud: Cloud) -> None:
    user = cloud.register("t26-choice")
    ref = _approval_workflow(user, CHOICE)
    workflow_id, inquiry = _paused_at_inquiry(user, ref)
    # WHEN a value outside the choices is sent THEN 400 naming the field
    bad = respond(user, inquiry["id"], {"color": "purple"})
    assert bad.status_code == 400 and "color" in error_of(bad), bad.text
    # WHEN one of the choices is picked THEN the workflow goes on with it
    assert respond(user, inquiry["id"], {"color": "green"}).status_code == 200
    _finish(user, workflow_id, {"color": "green"})


def test_roles_and_tenants(cloud: Cloud) -> None:
    admin = cloud.register("t26-roles")
    executor, viewer = admin.add_user("executor"), admin.add_user("viewer")
    stranger = cloud.register("t26-stranger")
    # GIVEN an inquiry only admins may answer
    ref = _approval_workflow(admin, YES_NO, roles=["admin"])
    workflow_id, inquiry = _paused_at_inquiry(admin, ref)
    assert get_inquiry(admin, inquiry["id"])["roles"] == ["admin"]
    # WHEN an executor or a viewer of the tenant answers THEN 403, and it stays pending
    for someone in (executor, viewer):
        denied = respond(someone, inquiry["id"], {"approved": True})
        assert denied.status_code == 403, (someone.username, denied.text)
        error_of(denied)
    # WHEN another tenant reads or answers it THEN 404, as if it did not exist
    assert stranger.get(f"/api/v1/inquiries/{inquiry['id']}").status_code == 404
    foreign = respond(stranger, inquiry["id"], {"approved": True})
    assert foreign.status_code == 404, foreign.text
    assert inquiries(stranger) == []
    assert get_inquiry(admin, inquiry["id"])["status"] == "pending"
    # AND the tenant's users can see it
    assert get_inquiry(viewer, inquiry["id"])["id"] == inquiry["id"]
    # WHEN an admin answers THEN it goes through
    assert respond(admin, inquiry["id"], {"approved": False}).status_code == 200
    _finish(admin, workflow_id, {"approved": False})

    # AND an inquiry without roles may be answered by an executor (who may answer inquiries) but not a viewer
    open_ref = _approval_workflow(admin, YES_NO)
    open_id, open_inquiry = _paused_at_inquiry(admin, open_ref)
    assert respond(viewer, open_inquiry["id"], {"approved": True}).status_code == 403
    assert respond(executor, open_inquiry["id"], {"approved": True}).status_code == 200
    assert get_inquiry(admin, open_inquiry["id"])["responded_by"] == executor.username
    _finish(admin, open_id, {"approved": True})


def test_core_ask_on_its_own(cloud: Cloud) -> None:
    user = cloud.register("t26-ask")
    # WHEN core.ask runs as an action by itself
    execution_id = start(user, "core.ask", {"prompt": "Restart db-1?", "schema": YES_NO, "ttl": 120})
    # THEN its execution pauses on a pending inquiry of that execution (no workflow)
    wait_status(user, execution_id, "paused")
    inquiry = wait_inquiry(user, execution_id=execution_id)
    assert inquiry["execution_id"] == execution_id and inquiry["workflow_execution_id"] is None, str(inquiry)
    assert inquiry["prompt"] == "Restart db-1?" and inquiry["timeout_at"] is not None, str(inquiry)
    assert timedelta(seconds=119) <= at(inquiry["timeout_at"]) - at(inquiry["created"]) <= timedelta(seconds=121)
    # WHEN answered THEN the execution succeeds with the answer as its output
    assert respond(user, inquiry["id"], {"approved": True}).status_code == 200
    execution = wait_done(user, execution_id)
    assert execution["status"] == "succeeded" and output(execution) == {"approved": True}, str(execution)
    assert get_inquiry(user, inquiry["id"])["status"] == "responded"


def test_unanswered_inquiry_takes_its_default(cloud: Cloud) -> None:
    user = cloud.register("t26-default")
    # WHEN a core.ask with a 2 s ttl and a default is not answered
    execution_id = start(user, "core.ask", {"prompt": "Proceed?", "schema": YES_NO, "ttl": 2,
                                            "default": {"approved": False}})
    inquiry = wait_inquiry(user, execution_id=execution_id)
    execution = wait_done(user, execution_id, timeout=30)
    # THEN the inquiry expired and the execution succeeded with the default
    assert execution["status"] == "succeeded" and output(execution) == {"approved": False}, str(execution)
    assert get_inquiry(user, inquiry["id"])["status"] == "expired"
    assert inquiries(user, status="pending") == []
