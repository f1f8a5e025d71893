"""The workflow runtime on real PostgreSQL and moto, driven message by message.

The workflow handler gets its `workflow-tasks` messages straight from the
outbox (or as Step Functions would send them), so each property is shown
without a running state machine: a redelivered task message creates one
child; an inquiry pauses, is answered once, expires once; a canceled
inquiry's execution ends at once; the sweep settles a workflow whose state
machine execution is gone. What happened is read back in SQL.
"""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.db.pool import system_tx
from chalicelib.models.messages import WorkflowMessage
from chalicelib.workflows import service
from chalicelib.workflows.sweep import sweep_once
from tests.helpers.api import ApiUser, register

pytestmark = pytest.mark.integration


def sql(query: str, *args: Any) -> list[dict[str, Any]]:
    with system_tx() as cur:
        cur.execute(query, args)
        return list(cur.fetchall()) if cur.description else []


def execution(user: ApiUser, execution_id: int) -> dict[str, Any]:
    status, body = user.get(f"/api/v1/executions/{execution_id}")
    assert status == 200, body
    return dict(body)


def workflow(user: ApiUser, tasks: list[dict[str, Any]]) -> int:
    """Register a pack with one workflow action and run it; the workflow execution's id (it is running)."""
    status, body = user.post("/api/v1/packs", {"ref": "wf", "version": "1.0.0", "files": {"actions/x.sh": "true"}})
    assert status == 201, body
    status, body = user.post("/api/v1/actions", {"ref": "wf.flow", "runner_type": "workflow",
                                                 "workflow": {"tasks": tasks}})
    assert status == 201, body
    status, body = user.post("/api/v1/executions", {"action_ref": "wf.flow", "parameters": {}})
    assert status == 201 and body["status"] == "running", body
    return int(body["id"])


def ask(user: ApiUser, **parameters: Any) -> tuple[int, dict[str, Any]]:
    """Run core.ask; its execution id and its (pending) inquiry."""
    status, body = user.post("/api/v1/executions", {"action_ref": "core.ask", "parameters": parameters})
    assert status == 201 and body["status"] == "paused", body
    status, page = user.get(f"/api/v1/inquiries?execution_id={body['id']}")
    assert status == 200 and page["total"] == 1, page
    return int(body["id"]), dict(page["items"][0])


def test_a_task_message_delivered_twice_creates_its_child_once(api: Any) -> None:
    # GIVEN a running workflow and the task message its state machine would send
    user = register(api)
    workflow_id = workflow(user, [{"name": "a", "action": "core.noop"}])
    message = WorkflowMessage(kind="task", tenant_id=user.tenant_id, execution_id=workflow_id, task="a",
                              task_token="token-" + str(workflow_id))
    # WHEN it is handled twice (SQS delivers at least once)
    service.handle(message)
    service.handle(message)
    # THEN one child exists, named after its task, with the token, and scheduled for a worker
    children = sql("SELECT task_name, status, task_token FROM attune.execution WHERE parent_execution_id = %s",
                   workflow_id)
    assert children == [{"task_name": "a", "status": "scheduled", "task_token": message.task_token}]
    (task,) = execution(user, workflow_id)["tasks"]
    assert task["name"] == "a" and task["status"] == "scheduled" and len(task["executions"]) == 1


def test_a_task_of_an_ended_workflow_does_not_start(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a workflow canceled before its first task message arrives (its token is failed, not run)
    user = register(api)
    workflow_id = workflow(user, [{"name": "a", "action": "core.noop"}])
    status, body = user.post(f"/api/v1/executions/{workflow_id}/cancel")
    assert status == 200 and body["status"] == "canceling", body
    failed: list[tuple[str, str]] = []
    monkeypatch.setattr(service.states, "send_task_failure", lambda token, error, cause: failed.append((token, error)))
    # WHEN the task message comes THEN no child is made and the token fails as canceled
    service.handle(WorkflowMessage(kind="task", tenant_id=user.tenant_id, execution_id=workflow_id, task="a",
                                   task_token="tok-late"))
    assert sql("SELECT id FROM attune.execution WHERE parent_execution_id = %s", workflow_id) == []
    assert failed == [("tok-late", "Attune.Canceled")]


def test_an_inquiry_is_answered_once_and_its_expiry_then_changes_nothing(api: Any) -> None:
    # GIVEN a paused core.ask execution, its expiry due at its ttl (held by the outbox, not a sleeping process)
    user = register(api)
    execution_id, inquiry = ask(user, prompt="Ship?", ttl=120)
    assert inquiry["status"] == "pending" and inquiry["prompt"] == "Ship?" and inquiry["timeout_at"]
    (expiry,) = sql("SELECT available_at - clock_timestamp() AS wait FROM attune.outbox "
                    "WHERE queue = 'workflow-tasks' AND body->>'kind' = 'expire' "
                    "AND (body->>'execution_id')::bigint = %s", execution_id)
    assert 100 < expiry["wait"].total_seconds() <= 120
    # WHEN answered with a value the schema refuses THEN 400 naming the field, and it is still pending
    status, body = user.post(f"/api/v1/inquiries/{inquiry['id']}/respond", {"response": {"approved": "yes"}})
    assert status == 400 and "response.approved" in body["error"]["message"], body
    # WHEN answered properly THEN responded by this user, and the execution succeeded with the response
    status, body = user.post(f"/api/v1/inquiries/{inquiry['id']}/respond", {"response": {"approved": True}})
    assert status == 200 and body["status"] == "responded" and body["responded_by"] == user.username, body
    done = execution(user, execution_id)
    assert done["status"] == "succeeded" and done["result"]["output"] == {"approved": True}
    # AND a second answer is 409, and the expiry message, when it comes, changes nothing
    status, body = user.post(f"/api/v1/inquiries/{inquiry['id']}/respond", {"response": {"approved": False}})
    assert status == 409, body
    service.handle(WorkflowMessage(kind="expire", tenant_id=user.tenant_id, execution_id=execution_id))
    assert execution(user, execution_id)["result"]["output"] == {"approved": True}
    status, again = user.get(f"/api/v1/inquiries/{inquiry['id']}")
    assert again["status"] == "responded"


def test_an_expired_inquiry_uses_its_default_or_fails(api: Any) -> None:
    # GIVEN two inquiries, one with a default, both past their ttl
    user = register(api)
    with_default, _ = ask(user, ttl=1, default={"approved": False})
    without, _ = ask(user, ttl=1)
    sql("UPDATE attune.inquiry SET expires_at = clock_timestamp() - interval '1 second' "
        "WHERE execution_id = ANY(%s)", [with_default, without])
    # WHEN their expiry messages come
    for execution_id in (with_default, without):
        service.handle(WorkflowMessage(kind="expire", tenant_id=user.tenant_id, execution_id=execution_id))
    # THEN both inquiries expired; the default is the one's output, the other failed saying why
    assert [r["status"] for r in sql("SELECT status FROM attune.inquiry WHERE execution_id = ANY(%s)",
                                     [with_default, without])] == ["expired", "expired"]
    assert execution(user, with_default)["status"] == "succeeded"
    assert execution(user, with_default)["result"]["output"] == {"approved": False}
    assert execution(user, without)["status"] == "failed"
    assert execution(user, without)["result"]["error"] == "inquiry expired"


def test_another_tenant_cannot_see_or_answer_an_inquiry_and_a_viewer_cannot_answer(api: Any) -> None:
    owner, other = register(api), register(api)
    _, inquiry = ask(owner)
    assert other.get(f"/api/v1/inquiries/{inquiry['id']}")[0] == 404
    assert other.post(f"/api/v1/inquiries/{inquiry['id']}/respond", {"response": {"approved": True}})[0] == 404
    assert other.get("/api/v1/inquiries")[1]["total"] == 0


def test_canceling_a_waiting_inquiry_ends_it_at_once(api: Any) -> None:
    # GIVEN a paused core.ask execution WHEN canceled THEN canceled at once (nothing runs it) and its inquiry expired
    user = register(api)
    execution_id, inquiry = ask(user)
    status, body = user.post(f"/api/v1/executions/{execution_id}/cancel")
    assert status == 200 and body["status"] == "canceled", body
    assert user.get(f"/api/v1/inquiries/{inquiry['id']}")[1]["status"] == "expired"
    assert user.post(f"/api/v1/inquiries/{inquiry['id']}/respond", {"response": {"approved": True}})[0] == 409


def test_the_sweep_fails_a_workflow_whose_state_machine_execution_is_gone(api: Any) -> None:
    # GIVEN a running workflow whose state machine execution the emulator no longer knows (it restarted)
    user = register(api)
    workflow_id = workflow(user, [{"name": "a", "action": "core.noop"}])
    gone = f"arn:aws:states:us-east-1:123456789012:execution:attune-wf-gone:t{user.tenant_id}-e{workflow_id}"
    sql("UPDATE attune.execution SET sfn_execution = %s WHERE id = %s", gone, workflow_id)
    # WHEN the sweep runs (nothing moved it since: a 0 s quiet window) THEN the workflow failed,
    # saying its engine lost it — never left running
    assert sweep_once(quiet_s=0) >= 1
    done = execution(user, workflow_id)
    assert done["status"] == "failed", done
    assert "lost its execution" in done["result"]["error"]


def test_a_definition_step_functions_refuses_fails_the_workflow_instead_of_retrying(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN Step Functions refuses the compiled state machine (a limit, a compiler bug)
    user = register(api)
    workflow_id = workflow(user, [{"name": "a", "action": "core.noop"}])

    def refuse(digest: str, definition: str) -> str:
        raise service.states.DefinitionRefused("Step Functions refused the workflow's state machine: too big")

    monkeypatch.setattr(service.states, "ensure_state_machine", refuse)
    # WHEN its start message is handled THEN the workflow failed at once, saying why (no redelivery loop)
    service.handle(WorkflowMessage(kind="start", tenant_id=user.tenant_id, execution_id=workflow_id))
    done = execution(user, workflow_id)
    assert done["status"] == "failed" and "refused the workflow's state machine" in done["result"]["error"], done
