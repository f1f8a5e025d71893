"""The execution lifecycle on real PostgreSQL and moto: what every move owes the rest of the system.

Executions are requested through the API (Chalice's client over the real app)
or by `request_execution` in a system transaction; the rules engine and the
worker get their messages straight from the outbox as the SQS records Lambda
would (`sqs_poller.to_record`). What a move wrote is read back in SQL:
`attune.outbox` (queue, body), `attune.audit_log`, `attune.enforcement`.
No notifier or callback consumer runs here, so their outbox rows stay put.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import pytest

from chalicelib.db.actions import find_for_run
from chalicelib.db.pool import system_tx
from chalicelib.executions import lifecycle, request_execution
from chalicelib.executions.reaper import reap_once
from chalicelib.local.sqs_poller import to_record
from tests.helpers.api import ApiUser, register
from tests.helpers.procs import tagged_processes as _tagged
from tests.integration.conftest_aws import eventually

pytestmark = pytest.mark.integration

ARN = "arn:aws:sqs:us-east-1:123456789012:attune-{queue}"
FAIL_SH = 'echo "about to fail" >&2\nexit 1\n'
# Writes its pid (exec: the pid is the sleeping process itself), then sleeps.
# The action's process is found by a unique name (it runs in a PID namespace and cannot write
# the test's files): `exec -a` names the sleep after the tag it was given.
TAGGED_SLEEP_SH = """\
tag=$(cat | jq -r .tag)
exec -a "$tag" sleep 30
"""
TOKEN_FACTS_PY = """\
import hashlib

def run(token):
    return {"length": len(token), "first": ord(token[0]), "sha256": hashlib.sha256(token.encode()).hexdigest()}
"""
STATUS_CHANGED = "execution.status_changed"
# The queue a final child/task execution calls back on (infra/template.yaml: `<stack>-workflow-callbacks`).
CALLBACKS = "workflow-callbacks"




# -- helpers ---------------------------------------------------------------------------------
def sql(query: str, *args: Any) -> list[dict[str, Any]]:
    """Rows of a query run in a system transaction (tests may look at any table)."""
    with system_tx() as cur:
        cur.execute(query, args)
        return list(cur.fetchall()) if cur.description else []


def outbox_rows(queue: str, execution_id: int | None = None) -> list[dict[str, Any]]:
    """The outbox rows of a queue (for one execution), oldest first."""
    rows = sql("SELECT id, queue, body FROM attune.outbox WHERE queue = %s ORDER BY id", queue)
    if execution_id is None:
        return rows
    key = "entity_id" if queue == "notifications" else "execution_id"
    return [r for r in rows if r["body"].get(key) == execution_id]


def record_of(queue: str, row: dict[str, Any]) -> dict[str, Any]:
    """An outbox row as the SQS record the local poller hands a Lambda handler."""
    message = {"MessageId": str(uuid.uuid4()), "ReceiptHandle": f"rh-{uuid.uuid4().hex}",
               "Body": json.dumps({**row["body"], "outbox_id": row["id"]})}
    return to_record(message, ARN.format(queue=queue), "us-east-1")


def work_record(execution_id: int) -> dict[str, Any]:
    rows = outbox_rows("work", execution_id)
    assert len(rows) == 1, f"one work message for execution {execution_id}: {rows}"
    return record_of("work", rows[0])


def deliver_work(*records: dict[str, Any], lambda_mode: bool = True) -> Any:
    from functions.worker import app

    entry = app.handler if lambda_mode else app.poller_handler
    return entry({"Records": list(records)}, None)


def run_rules_for(event_id: int) -> None:
    """Hand the event's message to the rules Lambda, as the events poller would."""
    from functions.rules.app import handler

    rows = [r for r in outbox_rows("events") if r["body"].get("event_id") == event_id]
    assert len(rows) == 1, rows
    assert handler({"Records": [record_of("events", rows[0])]}, None) == {"batchItemFailures": []}


def post_webhook(user: ApiUser, trigger_id: int, payload: Any) -> int:
    resp = user.client.http.post(f"/api/v1/webhooks/{trigger_id}", headers={"Content-Type": "application/json"},
                                 body=json.dumps(payload).encode())
    assert resp.status_code == 202, resp.body
    return int(json.loads(resp.body)["event_id"])


def webhook_rule(user: ApiUser, action_ref: str, parameters: dict[str, Any]) -> tuple[int, int]:
    status, trigger = user.post("/api/v1/triggers", {"type": "webhook"})
    assert status == 201, trigger
    status, rule = user.post("/api/v1/rules", {"trigger_id": trigger["id"], "action_ref": action_ref,
                                               "parameters": parameters})
    assert status == 201, rule
    return int(trigger["id"]), int(rule["id"])


def inline_action(user: ApiUser, ref: str, runner: str, code: str, parameters: dict[str, Any]) -> str:
    status, body = user.post("/api/v1/actions", {"ref": ref, "runner_type": runner, "code": code,
                                                 "parameters": parameters})
    assert status == 201, body
    return ref


def tenant(api: Any, prefix: str = "life") -> ApiUser:
    """A new tenant admin with a pack `ops` to hang inline actions on."""
    user = register(api, prefix)
    status, body = user.post("/api/v1/packs", {"ref": "ops", "version": "1.0.0", "files": {}})
    assert status == 201, body
    return user


def request(user: ApiUser, action_ref: str, parameters: dict[str, Any] | None = None) -> int:
    status, body = user.post("/api/v1/executions", {"action_ref": action_ref, "parameters": parameters or {}})
    assert status == 201 and body["status"] == "scheduled", body
    return int(body["id"])


def execution(user: ApiUser, execution_id: int) -> dict[str, Any]:
    status, body = user.get(f"/api/v1/executions/{execution_id}")
    assert status == 200, body
    return dict(body)


def enforcement(user: ApiUser, rule_id: int) -> dict[str, Any]:
    status, body = user.get(f"/api/v1/enforcements?rule_id={rule_id}")
    assert status == 200 and body["total"] == 1, body
    return dict(body["items"][0])


def executions_of(user: ApiUser, enforcement_id: int) -> list[dict[str, Any]]:
    status, body = user.get(f"/api/v1/executions?enforcement_id={enforcement_id}")
    assert status == 200, body
    return list(body["items"])


def audit_actions(execution_id: int) -> list[str]:
    rows = sql("SELECT action FROM attune.audit_log WHERE entity_type = 'execution' AND entity_id = %s ORDER BY id",
               str(execution_id))
    return [r["action"] for r in rows]


def listen(tenant_id: int) -> None:
    """A WebSocket client of the tenant is connected (what $connect stores)."""
    sql("INSERT INTO attune.ws_connection (connection_id, tenant_id) VALUES (%s, %s)",
        f"conn-{uuid.uuid4().hex[:12]}", tenant_id)


def login(api: Any, username: str, password: str, tenant_id: int) -> ApiUser:
    resp = api.http.post("/auth/login", headers={"Content-Type": "application/json"},
                         body=json.dumps({"username": username, "password": password}))
    assert resp.status_code == 200, resp.body
    return ApiUser(api, username, json.loads(resp.body)["access_token"], tenant_id)


def action_row(tenant_id: int, ref: str) -> dict[str, Any]:
    with system_tx() as cur:
        found = find_for_run(cur, tenant_id, ref)
    assert found is not None, ref
    return found


def request_in_tx(tenant_id: int, ref: str, parameters: dict[str, Any] | None = None, **kwargs: Any) -> int:
    """`request_execution` in a system transaction, as the rules engine (and later workflows) call it."""
    action = action_row(tenant_id, ref)
    with system_tx() as cur:
        requested = request_execution(cur, tenant_id=tenant_id, action=action, parameters=parameters or {},
                                      actor="service:test", **kwargs)
    return int(requested.execution["id"])


def claim_and_complete(tenant_id: int, execution_id: int, final: str) -> list[list[dict[str, Any]]]:
    """Claim then complete with `final`; the callbacks outbox rows of the execution after each move."""
    seen: list[list[dict[str, Any]]] = []
    with system_tx() as cur:
        claimed = lifecycle.claim(cur, tenant_id, execution_id, worker_id="test:1:0", runner_type="shell")
    assert claimed is not None and claimed.status == "running"
    seen.append(outbox_rows(CALLBACKS, execution_id))
    with system_tx() as cur:
        done = lifecycle.complete(cur, tenant_id, execution_id, final=final,
                                  result={"exit_code": 0 if final == "succeeded" else 1, "error": None},
                                  actor="worker:test:1:0")
    assert done is not None and done.status == final
    seen.append(outbox_rows(CALLBACKS, execution_id))
    return seen


# -- the enforcement follows its execution ------------------------------------------------------
def test_enforcement_follows_its_execution_to_succeeded(worker_env: None, api: Any) -> None:
    # GIVEN a webhook rule running core.echo
    user = tenant(api)
    trigger_id, rule_id = webhook_rule(user, "core.echo", {"message": "{{ trigger.data.msg }}"})
    # WHEN the webhook fires and the rules engine handles its event
    run_rules_for(post_webhook(user, trigger_id, {"msg": "hello"}))
    # THEN the enforcement is scheduled along with its one scheduled execution
    enf = enforcement(user, rule_id)
    assert (enf["status"], enf["error"]) == ("scheduled", None), enf
    [ex] = executions_of(user, enf["id"])
    assert ex["status"] == "scheduled"
    # WHEN the worker runs it
    assert deliver_work(work_record(ex["id"])) == {"batchItemFailures": []}
    # THEN the execution succeeded and the enforcement followed it, with no error
    assert execution(user, ex["id"])["status"] == "succeeded"
    enf = enforcement(user, rule_id)
    assert (enf["status"], enf["error"]) == ("succeeded", None), enf


def test_enforcement_follows_a_failing_execution_with_its_error(worker_env: None, api: Any) -> None:
    # GIVEN a webhook rule running a shell action that exits 1
    user = tenant(api)
    ref = inline_action(user, "ops.fail", "shell", FAIL_SH, {})
    trigger_id, rule_id = webhook_rule(user, ref, {})
    run_rules_for(post_webhook(user, trigger_id, {}))
    [ex] = executions_of(user, enforcement(user, rule_id)["id"])
    # WHEN the worker runs it
    deliver_work(work_record(ex["id"]))
    # THEN the execution failed, and its enforcement failed with the execution's error
    done = execution(user, ex["id"])
    assert done["status"] == "failed" and done["result"]["error"] == "exit code 1", done
    enf = enforcement(user, rule_id)
    assert enf["status"] == "failed" and enf["error"] == done["result"]["error"], enf


def test_template_error_makes_one_failed_execution_and_fails_the_enforcement(api: Any) -> None:
    # GIVEN a rule whose parameter template breaks on the event's payload (str + int)
    user = tenant(api)
    trigger_id, rule_id = webhook_rule(user, "core.echo", {"message": "{{ trigger.data.msg + 1 }}"})
    # WHEN the event is processed
    run_rules_for(post_webhook(user, trigger_id, {"msg": "text"}))
    # THEN exactly one execution, failed at once, its error naming the template error
    enf = enforcement(user, rule_id)
    executions = executions_of(user, enf["id"])
    assert [e["status"] for e in executions] == ["failed"], executions
    error = execution(user, executions[0]["id"])["result"]["error"]
    assert error.startswith("template error: ") and "parameters.message" in error, error
    # AND the enforcement failed with the same message
    assert (enf["status"], enf["error"]) == ("failed", error), enf
    # AND no work message was written, and nothing started
    assert outbox_rows("work") == []
    assert "execution.started" not in audit_actions(executions[0]["id"])
    assert user.get("/api/v1/executions")[1]["total"] == 1


# -- notifications --------------------------------------------------------------------------------
def test_no_listener_no_notifications(worker_env: None, api: Any) -> None:
    # GIVEN a tenant with no WebSocket client connected (and no other tenant's either)
    user = tenant(api)
    # WHEN an execution runs all the way
    execution_id = request(user, "core.echo", {"message": "quiet"})
    deliver_work(work_record(execution_id))
    assert execution(user, execution_id)["status"] == "succeeded"
    # THEN no notification was enqueued
    assert outbox_rows("notifications") == []


def test_every_status_change_is_notified_in_order_to_the_listening_tenant_only(worker_env: None, api: Any) -> None:
    # GIVEN tenant B has a WebSocket client connected, tenant A has none
    a, b = tenant(api, "tenant-a"), tenant(api, "tenant-b")
    listen(b.tenant_id)
    # WHEN one of A's executions runs
    unheard = request(a, "core.echo", {"message": "unheard"})
    deliver_work(work_record(unheard))
    assert execution(a, unheard)["status"] == "succeeded"
    # THEN B's connection caused no message about A's execution
    assert outbox_rows("notifications") == []
    # WHEN A connects a client too and runs another
    listen(a.tenant_id)
    heard = request(a, "core.echo", {"message": "heard"})
    after_request = [r["body"]["data"]["status"] for r in outbox_rows("notifications", heard)]
    deliver_work(work_record(heard))
    assert execution(a, heard)["status"] == "succeeded"
    # THEN the request's two changes were enqueued by its transaction, before any worker saw it
    assert after_request == ["requested", "scheduled"]
    # AND every change is one notification, in order, for that execution, for tenant A
    rows = outbox_rows("notifications")
    bodies = [r["body"] for r in rows]
    assert [m["data"]["status"] for m in bodies] == ["requested", "scheduled", "running", "succeeded"], bodies
    for message in bodies:
        assert message["event"] == STATUS_CHANGED
        assert message["tenant_id"] == a.tenant_id
        assert message["entity_type"] == "execution"
        assert message["entity_id"] == heard and message["data"]["id"] == heard
        assert message["data"]["action_ref"] == "core.echo"
        assert "parameters" not in message["data"] and "result" not in message["data"]
    # AND none about the earlier execution, nothing for tenant B
    assert outbox_rows("notifications", unheard) == []
    assert all(m["tenant_id"] != b.tenant_id for m in bodies)


# -- callbacks --------------------------------------------------------------------------------------
def test_a_child_execution_calls_back_its_parent_once_when_final(api: Any) -> None:
    # GIVEN a parent execution and a child requested with its parent_execution_id
    user = tenant(api)
    parent = request_in_tx(user.tenant_id, "core.noop")
    child = request_in_tx(user.tenant_id, "core.noop", parent_execution_id=parent)
    # THEN nothing is owed while it is requested/scheduled
    assert outbox_rows(CALLBACKS, child) == []
    # WHEN it is claimed, then completes
    while_running, once_final = claim_and_complete(user.tenant_id, child, "failed")
    # THEN no callback while running, exactly one once final, naming the parent and the status
    assert while_running == []
    assert [r["body"] for r in once_final] == [{
        "kind": "callback", "tenant_id": user.tenant_id, "execution_id": child, "status": "failed",
        "parent_execution_id": parent,
    }]
    # AND the parent (no parent, no token) owes nothing
    assert outbox_rows(CALLBACKS, parent) == []


def test_a_task_token_execution_calls_back_once_and_a_plain_one_never(api: Any) -> None:
    # GIVEN an execution started for a Step Functions task (task_token) and one with neither token nor parent
    user = tenant(api)
    tokened = request_in_tx(user.tenant_id, "core.noop", task_token="tok")
    plain = request_in_tx(user.tenant_id, "core.noop")
    # WHEN both run to the end
    tokened_seen = claim_and_complete(user.tenant_id, tokened, "succeeded")
    plain_seen = claim_and_complete(user.tenant_id, plain, "succeeded")
    # THEN the token's callback is written once, only when final, carrying the token and the status
    assert tokened_seen[0] == []
    assert [r["body"] for r in tokened_seen[1]] == [{
        "kind": "callback", "tenant_id": user.tenant_id, "execution_id": tokened, "status": "succeeded",
        "task_token": "tok",
    }]
    # AND the plain one wrote none
    assert plain_seen == [[], []]
    assert [r["body"]["execution_id"] for r in outbox_rows(CALLBACKS)] == [tokened]


def test_children_failed_at_request_or_canceled_call_back_too(api: Any) -> None:
    # GIVEN a parent
    user = tenant(api)
    parent = request_in_tx(user.tenant_id, "core.noop")
    # WHEN a child is rejected at request (core.http without its required url) and another canceled while scheduled
    rejected = request_in_tx(user.tenant_id, "core.http", {}, parent_execution_id=parent)
    canceled = request_in_tx(user.tenant_id, "core.noop", parent_execution_id=parent)
    with system_tx() as cur:
        moved = lifecycle.cancel(cur, user.tenant_id, canceled, actor="user:test")
    assert moved.status == "canceled"
    # THEN each owes exactly one callback with its final status: the parent hears of every final child
    assert [(r["body"]["status"], r["body"]["parent_execution_id"]) for r in outbox_rows(CALLBACKS, rejected)] \
        == [("failed", parent)]
    assert [(r["body"]["status"], r["body"]["parent_execution_id"]) for r in outbox_rows(CALLBACKS, canceled)] \
        == [("canceled", parent)]


# -- cancel over the API ----------------------------------------------------------------------------
def test_cancel_of_a_scheduled_execution_is_final_and_its_work_message_runs_nothing(
    worker_env: None, api: Any
) -> None:
    # GIVEN a scheduled execution whose work message no worker has taken yet
    user = tenant(api)
    execution_id = request(user, "core.noop")
    record = work_record(execution_id)
    # WHEN it is canceled
    status, body = user.post(f"/api/v1/executions/{execution_id}/cancel")
    # THEN 200 and canceled at once, audited
    assert status == 200 and body["status"] == "canceled", body
    assert body["finished"] is not None
    assert audit_actions(execution_id)[-1] == "execution.canceled"
    # WHEN its work message arrives later
    assert deliver_work(record) == {"batchItemFailures": []}
    # THEN nothing ran: still canceled, never started, no `execution.started`, message acknowledged
    done = execution(user, execution_id)
    assert done["status"] == "canceled" and done["started"] is None, done
    assert "execution.started" not in audit_actions(execution_id)
    assert outbox_rows("work", execution_id) == []


def test_cancel_of_a_running_execution_stops_the_action(worker_env: None, api: Any) -> None:
    # GIVEN a shell action sleeping 30 s, running under the long-lived poller's handler
    user = tenant(api)
    ref = inline_action(user, "ops.sleeper", "shell", TAGGED_SLEEP_SH, {"tag": {"type": "string"}})
    tag = f"attune-cancel-test-{uuid.uuid4().hex[:12]}"
    execution_id = request(user, ref, {"tag": tag})
    assert deliver_work(work_record(execution_id), lambda_mode=False) == {"batchItemFailures": []}
    eventually(lambda: _tagged(tag), message="the action's process")
    eventually(lambda: execution(user, execution_id)["status"] == "running", message="running")
    # WHEN it is canceled over the API
    status, body = user.post(f"/api/v1/executions/{execution_id}/cancel")
    # THEN 200 `canceling` at once (the process must stop first) ...
    assert status == 200 and body["status"] == "canceling", body
    # ... then `canceled` well before the action would have ended, and its process is gone
    done = eventually(lambda: (found := execution(user, execution_id))["status"] == "canceled" and found,
                      timeout=10, message="the execution to be canceled")
    assert done["finished"] is not None
    eventually(lambda: not _tagged(tag), timeout=5, message="the action's process to be stopped")
    actions = audit_actions(execution_id)
    assert actions.index("execution.cancel_requested") < actions.index("execution.completed"), actions


def test_cancel_refusals(api: Any) -> None:
    # GIVEN a finished execution of tenant A, a scheduled one, another tenant, and a viewer of A
    a, other = tenant(api, "cancel-a"), tenant(api, "cancel-b")
    finished = request(a, "core.noop")
    assert a.post(f"/api/v1/executions/{finished}/cancel")[0] == 200
    scheduled = request(a, "core.noop")
    viewer_name = f"{a.username}-viewer"
    assert a.post("/api/v1/users", {"username": viewer_name, "password": "viewer-pass-123",
                                    "role": "viewer"})[0] == 201
    viewer = login(api, viewer_name, "viewer-pass-123", a.tenant_id)
    # WHEN a final one is canceled THEN 409, naming its state
    status, body = a.post(f"/api/v1/executions/{finished}/cancel")
    assert status == 409 and body["error"]["code"] == "conflict", body
    assert "canceled" in body["error"]["message"]
    # WHEN another tenant cancels A's execution, or anyone an unknown id THEN 404, as if absent
    status, body = other.post(f"/api/v1/executions/{scheduled}/cancel")
    assert status == 404 and body["error"]["code"] == "not_found", body
    assert a.post("/api/v1/executions/999999999/cancel")[0] == 404
    # WHEN a viewer of A tries THEN 403
    status, body = viewer.post(f"/api/v1/executions/{scheduled}/cancel")
    assert status == 403 and body["error"]["code"] == "forbidden", body
    # AND none of the refusals changed anything
    assert execution(a, scheduled)["status"] == "scheduled"
    assert execution(a, finished)["status"] == "canceled"
    assert audit_actions(scheduled).count("execution.canceled") == 0


# -- retry and reap --------------------------------------------------------------------------------
def test_retry_puts_a_running_execution_back_on_the_work_queue_once(api: Any) -> None:
    # GIVEN a running execution (claimed by a worker), its first work message
    user = tenant(api)
    execution_id = request_in_tx(user.tenant_id, "core.noop")
    with system_tx() as cur:
        assert lifecycle.claim(cur, user.tenant_id, execution_id, worker_id="w:1:0", runner_type="shell")
    first_work = outbox_rows("work", execution_id)
    assert len(first_work) == 1
    # WHEN a retry is asked for
    with system_tx() as cur:
        moved = lifecycle.retry(cur, user.tenant_id, execution_id, actor="service:test", reason="policy")
    # THEN scheduled again, retry_count 1, the last attempt's worker and clock forgotten
    assert moved is not None and moved.status == "scheduled"
    row = sql("SELECT status, retry_count, worker_id, started, heartbeat_at FROM attune.execution WHERE id = %s",
              execution_id)[0]
    assert row == {"status": "scheduled", "retry_count": 1, "worker_id": None, "started": None,
                   "heartbeat_at": None}
    # AND a new work message, returned for publishing, and the retry audited
    work = outbox_rows("work", execution_id)
    assert len(work) == 2 and work[0] == first_work[0]
    assert [(m.queue, m.id) for m in moved.messages if m.queue == "work"] == [("work", work[1]["id"])]
    retried = sql("SELECT detail FROM attune.audit_log WHERE action = 'execution.retried' AND entity_id = %s",
                  str(execution_id))
    assert [r["detail"]["retry_count"] for r in retried] == [1]
    # WHEN a second retry comes while it is scheduled THEN nothing moves, nothing more is written
    with system_tx() as cur:
        assert lifecycle.retry(cur, user.tenant_id, execution_id, actor="service:test", reason="again") is None
    assert len(outbox_rows("work", execution_id)) == 2
    assert audit_actions(execution_id).count("execution.retried") == 1
    assert sql("SELECT retry_count FROM attune.execution WHERE id = %s", execution_id)[0]["retry_count"] == 1


def test_reap_settles_stale_claimed_executions_and_never_a_workerless_parent(api: Any) -> None:
    # GIVEN claimed executions whose worker stopped beating 45 s ago: one canceling, one running;
    # and a running one without a worker (a workflow's parent), also long silent
    user = tenant(api)
    canceling, running, parent = (request_in_tx(user.tenant_id, "core.noop") for _ in range(3))
    sql("UPDATE attune.execution SET status = CASE WHEN id = %s THEN 'canceling' ELSE 'running' END,"
        " worker_id = 'gone:1:0', started = now() - interval '1 min', heartbeat_at = now() - interval '45 s'"
        " WHERE id = ANY(%s)", canceling, [canceling, running])
    sql("UPDATE attune.execution SET status = 'running', worker_id = NULL, started = now() - interval '1 hour',"
        " heartbeat_at = now() - interval '1 hour' WHERE id = %s", parent)
    # WHEN the reaper sweeps with a 30 s threshold
    assert reap_once(threshold_s=30) == 2
    # THEN the canceling one is canceled, the running one failed with "worker lost", the parent untouched
    rows = {r["id"]: r for r in sql("SELECT id, status, result, finished FROM attune.execution WHERE id = ANY(%s)",
                                    [canceling, running, parent])}
    assert rows[canceling]["status"] == "canceled" and rows[canceling]["finished"] is not None
    assert rows[running]["status"] == "failed" and rows[running]["finished"] is not None
    assert rows[running]["result"]["error"].startswith("worker lost: no heartbeat for 4"), rows[running]
    assert rows[parent]["status"] == "running" and rows[parent]["finished"] is None
    # AND each reap is audited by the reaper once; a second sweep finds nothing
    assert audit_actions(canceling)[-1] == "execution.canceled"
    assert audit_actions(running)[-1] == "execution.failed"
    assert reap_once(threshold_s=30) == 0
    assert sql("SELECT status FROM attune.execution WHERE id = %s", parent)[0]["status"] == "running"


# -- secret parameters --------------------------------------------------------------------------
def test_secret_parameters_are_sealed_everywhere_but_reach_the_action(worker_env: None, api: Any) -> None:
    # GIVEN an action declaring a secret `token`, and a tenant with a WebSocket client (notifications written too)
    user = tenant(api)
    listen(user.tenant_id)
    ref = inline_action(user, "ops.tokenfacts", "python3", TOKEN_FACTS_PY,
                        {"token": {"type": "string", "secret": True, "required": True}})
    token = f"tok-{uuid.uuid4().hex}"  # 36 chars
    # WHEN it is run over the API
    status, created = user.post("/api/v1/executions", {"action_ref": ref, "parameters": {"token": token}})
    assert status == 201 and created["status"] == "scheduled", created
    execution_id = int(created["id"])

    def assert_nowhere_in_plaintext() -> None:
        # THEN the API shows only the mask, in the created body, GET and list
        assert created["parameters"] == {"token": "********"}
        assert execution(user, execution_id)["parameters"] == {"token": "********"}
        listed = [e for e in user.get("/api/v1/executions")[1]["items"] if e["id"] == execution_id]
        assert [e["parameters"] for e in listed] == [{"token": "********"}]
        # AND no stored row holds it in plaintext: the execution, its audit trail, the outbox
        stored = sql("SELECT parameters::text AS p, coalesce(result::text, '') AS r, secret_parameters"
                     " FROM attune.execution WHERE id = %s", execution_id)[0]
        assert token not in stored["p"] and token not in stored["r"] and "********" in stored["p"]
        audit = sql("SELECT a::text AS t FROM attune.audit_log a")
        assert audit and not [r["t"] for r in audit if token in r["t"]]
        outbox = sql("SELECT o::text AS t FROM attune.outbox o")
        assert outbox and not [r["t"] for r in outbox if token in r["t"]]
        # AND the sealed form exists and does not contain the token's bytes
        sealed = stored["secret_parameters"]
        assert sealed is not None and token.encode() not in bytes(sealed)

    assert_nowhere_in_plaintext()
    # WHEN the worker runs it
    assert deliver_work(work_record(execution_id)) == {"batchItemFailures": []}
    # THEN the action received the real value (facts about it, not the mask's)
    done = execution(user, execution_id)
    assert done["status"] == "succeeded", done
    assert done["result"]["output"] == {
        "length": len(token), "first": ord(token[0]), "sha256": hashlib.sha256(token.encode()).hexdigest(),
    }
    assert done["result"]["output"]["length"] != len("********")
    # AND still nothing stored holds it in plaintext after the run
    assert_nowhere_in_plaintext()
