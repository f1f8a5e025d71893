"""Webhook → event → rules → enforcement → execution, in process, on real PostgreSQL and moto SQS."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.aws import queues
from chalicelib.aws.clients import client
from chalicelib.core.signatures import sign
from chalicelib.db.pool import system_tx
from tests.helpers.api import ApiUser, register

SECRET = "a-webhook-secret-of-some-length"


def _drain(queue: str) -> list[dict[str, Any]]:
    """Everything on a queue now, as Lambda SQS records."""
    records: list[dict[str, Any]] = []
    while True:
        resp = client("sqs").receive_message(QueueUrl=queues.queue_url(queue), MaxNumberOfMessages=10)
        messages = resp.get("Messages", [])
        if not messages:
            return records
        for m in messages:
            records.append(
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": {},
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                }
            )
            client("sqs").delete_message(QueueUrl=queues.queue_url(queue), ReceiptHandle=m["ReceiptHandle"])


def _run_rules(records: list[dict[str, Any]]) -> dict[str, Any]:
    from functions.rules.app import handler

    return handler({"Records": records}, None)


def _post_webhook(user: ApiUser, trigger_id: int, payload: Any, headers: dict[str, str] | None = None) -> Any:
    raw = json.dumps(payload).encode()
    return user.client.http.post(
        f"/api/v1/webhooks/{trigger_id}", headers={"Content-Type": "application/json", **(headers or {})}, body=raw
    )


def _setup(user: ApiUser, criteria: str | None = None, **trigger: Any) -> tuple[int, int]:
    _drain("events")
    _drain("work")
    status, t = user.post("/api/v1/triggers", {"type": "webhook", **trigger})
    assert status == 201, t
    body: dict[str, Any] = {
        "trigger_id": t["id"],
        "action_ref": "core.echo",
        "parameters": {"message": "{{ trigger.data.msg }}"},
    }
    if criteria:
        body["criteria"] = criteria
    status, rule = user.post("/api/v1/rules", body)
    assert status == 201, rule
    return t["id"], rule["id"]


def test_webhook_to_scheduled_execution(api: Any) -> None:
    user = register(api)
    trigger_id, rule_id = _setup(user, "{{ trigger.data.level == 'error' }}")
    # WHEN two webhooks arrive, one matching
    ok = _post_webhook(user, trigger_id, {"level": "error", "msg": "disk full"})
    assert ok.status_code == 202
    event_id = json.loads(ok.body)["event_id"]
    assert _post_webhook(user, trigger_id, {"level": "info", "msg": "fine"}).status_code == 202
    records = _drain("events")
    assert len(records) == 2
    assert _run_rules(records) == {"batchItemFailures": []}
    # THEN one enforcement and one scheduled execution with rendered parameters, and a work message
    _, enforcements = user.get(f"/api/v1/enforcements?rule_id={rule_id}")
    assert enforcements["total"] == 1 and enforcements["items"][0]["event_id"] == event_id
    assert enforcements["items"][0]["status"] == "scheduled"
    _, executions = user.get(f"/api/v1/executions?enforcement_id={enforcements['items'][0]['id']}")
    assert executions["total"] == 1
    execution = executions["items"][0]
    assert execution["status"] == "scheduled" and execution["parameters"] == {"message": "disk full"}
    work = _drain("work")
    assert [json.loads(r["body"])["execution_id"] for r in work] == [execution["id"]]
    # AND a redelivered event creates nothing more
    with system_tx() as cur:
        cur.execute("SELECT count(*) AS n FROM attune.outbox WHERE queue = 'events'")
        row = cur.fetchone()
        assert row is not None and row["n"] == 0, "consumed events are acknowledged"
    _run_rules(records)
    assert user.get(f"/api/v1/enforcements?rule_id={rule_id}")[1]["total"] == 1
    assert user.get("/api/v1/executions")[1]["total"] == 1


def test_types_are_kept_and_template_errors_fail_the_enforcement(api: Any) -> None:
    user = register(api)
    _, t = user.post("/api/v1/triggers", {"type": "webhook"})
    _drain("events")
    user.post(
        "/api/v1/rules",
        {"trigger_id": t["id"], "action_ref": "core.echo", "parameters": {"message": "{{ trigger.data.count * 2 }}"}},
    )
    user.post(
        "/api/v1/rules",
        {"trigger_id": t["id"], "action_ref": "core.echo", "parameters": {"message": "{{ trigger.data.count + 'x' }}"}},
    )
    _post_webhook(user, t["id"], {"count": 21})
    _run_rules(_drain("events"))
    _, enforcements = user.get(f"/api/v1/enforcements?trigger_id={t['id']}")
    errors = sorted(e["error"] for e in enforcements["items"])
    assert [e["status"] for e in enforcements["items"]] == ["failed", "failed"]
    # The int 42 reached validation as an int (core.echo wants a string): the type was kept ...
    assert "Parameter 'message'" in errors[0] and "42 is not of type 'string'" in errors[0]
    # ... and the broken template made an execution that failed at once, naming the template error
    # (ARCHITECTURE §5, seed T2.4), and its enforcement followed it to `failed` with the same message.
    assert errors[1].startswith("template error: parameters.message") and "TypeError" in errors[1]
    _, executions = user.get("/api/v1/executions")
    assert executions["total"] == 2 and {e["status"] for e in executions["items"]} == {"failed"}
    failures = sorted(user.get(f"/api/v1/executions/{e['id']}")[1]["result"]["error"] for e in executions["items"])
    assert failures == errors
    assert _drain("work") == [], "neither reached a worker"


def test_hmac_signed_webhooks(api: Any) -> None:
    user = register(api)
    status, t = user.post("/api/v1/triggers", {"type": "webhook", "secret": SECRET})
    assert status == 201 and t["hmac"] is True and "secret" not in t
    raw = json.dumps({"a": 1}).encode()
    good = {"X-Attune-Signature": sign(SECRET.encode(), raw)}
    bad = {"X-Attune-Signature": sign(b"wrong", raw)}
    for headers, expected in (({}, 401), (bad, 401), ({"X-Attune-Signature": "md5=abc"}, 401), (good, 202)):
        resp = _post_webhook(user, t["id"], {"a": 1}, headers)
        assert resp.status_code == expected, (headers, resp.body)
    assert user.get(f"/api/v1/events?trigger_id={t['id']}")[1]["total"] == 1


def test_webhook_refusals(api: Any) -> None:
    user = register(api)
    _, t = user.post("/api/v1/triggers", {"type": "webhook"})
    _, timer = user.post("/api/v1/triggers", {"type": "interval", "parameters": {"seconds": 60}})
    assert _post_webhook(user, 999999, {}).status_code == 404
    assert _post_webhook(user, timer["id"], {}).status_code == 404
    resp = user.client.http.post(
        f"/api/v1/webhooks/{t['id']}", headers={"Content-Type": "application/json"}, body=b"{not json"
    )
    assert resp.status_code == 400
    big = {"x": "a" * (1024 * 1024 + 10)}
    assert _post_webhook(user, t["id"], big).status_code == 413
    user.patch(f"/api/v1/triggers/{t['id']}", {"enabled": False})
    assert _post_webhook(user, t["id"], {}).status_code == 404
    assert user.get(f"/api/v1/events?trigger_id={t['id']}")[1]["total"] == 0


def test_invalid_parameters_fail_before_any_worker(api: Any) -> None:
    user = register(api)
    _drain("work")
    status, execution = user.post("/api/v1/executions", {"action_ref": "core.http", "parameters": {}})
    assert status == 201
    assert execution["status"] == "failed"
    assert "Missing required parameter: url" in execution["result"]["error"]
    assert _drain("work") == []
