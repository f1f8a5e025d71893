"""Chained triggers in process: an action's event continues its execution's chain; too deep is suppressed.

Executions are put in `running` with SQL (tests may set rows up directly) so that their
execution-scoped token is honoured, exactly as while a worker runs the action.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.aws.secrets import jwt_signing_key
from chalicelib.core.auth import issue_action_token
from chalicelib.core.errors import Unauthorized
from chalicelib.db.actions import find_for_run
from chalicelib.db.pool import system_tx
from chalicelib.executions import request_execution
from chalicelib.pipeline import webhooks
from tests.helpers.api import ApiUser, register
from tests.integration.test_pipeline import _drain, _post_webhook, _run_rules


def _rule(user: ApiUser, trigger_id: int) -> int:
    status, rule = user.post("/api/v1/rules", {"trigger_id": trigger_id, "action_ref": "core.echo",
                                               "parameters": {"message": "{{ trigger.data.msg }}"}})
    assert status == 201, rule
    return int(rule["id"])


def _webhook(user: ApiUser) -> int:
    status, trigger = user.post("/api/v1/triggers", {"type": "webhook"})
    assert status == 201, trigger
    return int(trigger["id"])


def _executions(user: ApiUser, **filters: Any) -> list[dict[str, Any]]:
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    status, body = user.get(f"/api/v1/executions?{query}")
    assert status == 200, body
    return list(body["items"])


def _running_token(user: ApiUser, execution_id: int) -> str:
    with system_tx() as cur:
        cur.execute("UPDATE attune.execution SET status = 'running' WHERE id = %s", (execution_id,))
    return issue_action_token(jwt_signing_key(), tenant_id=user.tenant_id, execution_id=execution_id,
                              ttl_seconds=300)


def _emit(user: ApiUser, token: str, body: Any) -> tuple[int, Any]:
    resp = user.client.http.post("/api/v1/events", body=json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    return resp.status_code, json.loads(resp.body)


def _run_chain_step(user: ApiUser) -> None:
    assert _run_rules(_drain("events")) == {"batchItemFailures": []}


def test_an_actions_event_carries_its_executions_chain(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    user = register(api)
    _drain("events")
    a, b = _webhook(user), _webhook(user)
    _rule(user, a)
    rule_b = _rule(user, b)
    # GIVEN a webhook event that started a chain, and the execution its rule made
    assert _post_webhook(user, a, {"msg": "first"}).status_code == 202
    _run_chain_step(user)
    (first,) = _executions(user)
    assert first["depth"] == 0 and len(first["trace"]) == 36
    # WHEN that execution's action emits to B with its token
    status, answer = _emit(user, _running_token(user, first["id"]), {"trigger_id": b, "payload": {"msg": "next"}})
    # THEN the event is accepted one level deeper on the same trace, and B's rule runs on the same chain
    assert status == 202 and answer["status"] == "accepted"
    assert answer["trace"] == first["trace"] and answer["depth"] == 1
    status, event = user.get(f"/api/v1/events/{answer['event_id']}")
    assert event["source_execution_id"] == first["id"] and event["trigger_id"] == b
    _run_chain_step(user)
    status, enforcements = user.get(f"/api/v1/enforcements?rule_id={rule_b}")
    (second,) = _executions(user, enforcement_id=enforcements["items"][0]["id"])
    assert second["trace"] == first["trace"] and second["depth"] == 1
    assert second["parameters"] == {"message": "next"}
    # AND the chain is one query away, and another trace's executions are not in it
    assert _post_webhook(user, a, {"msg": "unrelated"}).status_code == 202
    _run_chain_step(user)
    chain = _executions(user, trace=first["trace"])
    assert [e["id"] for e in chain] == [second["id"], first["id"]]
    assert len(_executions(user)) == 3
    events = user.get(f"/api/v1/events?trace={first['trace']}")[1]["items"]
    assert len(events) == 2

    # WHEN the chain is at the limit and goes one deeper
    monkeypatch.setenv("ATTUNE_MAX_CHAIN_DEPTH", "1")
    status, answer = _emit(user, _running_token(user, second["id"]), {"trigger_id": b, "payload": {"msg": "loop"}})
    # THEN the event is recorded suppressed with the reason, never queued, and nothing runs
    assert status == 202 and answer["status"] == "suppressed" and answer["depth"] == 2
    assert "ATTUNE_MAX_CHAIN_DEPTH" in answer["reason"]
    assert _drain("events") == []
    with system_tx() as cur:
        cur.execute("SELECT count(*) AS n FROM attune.outbox WHERE queue = 'events'")
        row = cur.fetchone()
    assert row is not None and row["n"] == 0
    suppressed = user.get("/api/v1/events?status=suppressed")[1]["items"]
    assert [e["id"] for e in suppressed] == [answer["event_id"]]
    assert suppressed[0]["reason"] == answer["reason"] and suppressed[0]["trace"] == first["trace"]
    assert len(_executions(user, trace=first["trace"])) == 2


def test_webhook_calls_with_an_action_token_continue_the_chain(api: Any) -> None:
    user = register(api)
    _drain("events")
    a = _webhook(user)
    _rule(user, a)
    _post_webhook(user, a, {"msg": "x"})
    _run_chain_step(user)
    (first,) = _executions(user)
    token = _running_token(user, first["id"])
    # WHEN the webhook is called with the action's token THEN its event continues the chain
    event_id = webhooks.receive(a, b'{"msg": "y"}', None, bearer=webhooks.bearer_token(f"Bearer {token}"))
    _, event = user.get(f"/api/v1/events/{event_id}")
    assert event["trace"] == first["trace"] and event["depth"] == 1
    # AND a user's (non-action) token, or none, starts a new chain
    other = webhooks.receive(a, b"{}", None, bearer=user.token)
    assert user.get(f"/api/v1/events/{other}")[1]["depth"] == 0
    # AND a forged or finished execution's token is refused, never a silent new chain
    with pytest.raises(Unauthorized):
        webhooks.receive(a, b"{}", None, bearer=token[:-4] + "AAAA")
    with system_tx() as cur:
        cur.execute("UPDATE attune.execution SET status = 'succeeded' WHERE id = %s", (first["id"],))
    with pytest.raises(Unauthorized):
        webhooks.receive(a, b"{}", None, bearer=token)


def test_a_workflow_task_inherits_its_parents_chain(api: Any) -> None:
    user = register(api)
    with system_tx() as cur:
        action = find_for_run(cur, user.tenant_id, "core.echo")
        assert action is not None
        parent = request_execution(cur, tenant_id=user.tenant_id, action=action, parameters={"message": "p"},
                                   actor="test", trace="t-parent", depth=3).execution
        child = request_execution(cur, tenant_id=user.tenant_id, action=action, parameters={"message": "c"},
                                  actor="test", parent_execution_id=parent["id"]).execution
        alone = request_execution(cur, tenant_id=user.tenant_id, action=action, parameters={"message": "a"},
                                  actor="test").execution
    assert (child["trace"], child["depth"]) == ("t-parent", 3)
    assert alone["trace"] != "t-parent" and alone["depth"] == 0


def test_emit_refusals_are_4xx(api: Any) -> None:
    user, other = register(api), register(api)
    trigger = _webhook(user)
    foreign = _webhook(other)
    # a user may emit into their own triggers (a new chain), not into another tenant's
    status, answer = user.post("/api/v1/events", {"trigger_id": trigger, "payload": {"a": 1}})
    assert status == 202 and answer["depth"] == 0 and answer["status"] == "accepted"
    assert user.post("/api/v1/events", {"trigger_id": foreign})[0] == 404
    assert user.post("/api/v1/events", {"trigger_id": 0})[0] == 400
    assert user.post("/api/v1/events", {"payload": {}})[0] == 400
    assert user.post("/api/v1/events", {"trigger_id": trigger, "extra": 1})[0] == 400
    assert user.get("/api/v1/executions?trace=%27;drop")[0] == 400
    assert user.get("/api/v1/events?status=weird")[0] == 400
    viewer_status, _ = _viewer(user).post("/api/v1/events", {"trigger_id": trigger})
    assert viewer_status == 403
    # an action token of an execution that is not running is refused
    with system_tx() as cur:
        action = find_for_run(cur, user.tenant_id, "core.echo")
        assert action is not None
        done = request_execution(cur, tenant_id=user.tenant_id, action=action, parameters={"message": "x"},
                                 actor="test").execution
    token = issue_action_token(jwt_signing_key(), tenant_id=user.tenant_id, execution_id=done["id"],
                               ttl_seconds=60)
    assert _emit(user, token, {"trigger_id": trigger})[0] == 401


def _viewer(admin: ApiUser) -> ApiUser:
    status, _ = admin.post("/api/v1/users", {"username": f"{admin.username}-v", "password": "correct-horse-battery",
                                              "role": "viewer"})
    assert status == 201
    resp = admin.client.http.post("/auth/login", headers={"Content-Type": "application/json"}, body=json.dumps(
        {"username": f"{admin.username}-v", "password": "correct-horse-battery"}).encode())
    return ApiUser(admin.client, f"{admin.username}-v", json.loads(resp.body)["access_token"], admin.tenant_id)
