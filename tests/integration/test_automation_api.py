"""Triggers and rules: validation at creation, tenancy, patching."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.helpers.api import register


def test_webhook_trigger_answers_with_its_url(api: Any) -> None:
    user = register(api)
    status, trigger = user.post("/api/v1/triggers", {"type": "webhook"})
    assert status == 201
    assert trigger["webhook_url"] == f"/api/v1/webhooks/{trigger['id']}"
    status, listing = user.get("/api/v1/triggers?type=webhook")
    assert status == 200 and [t["id"] for t in listing["items"]] == [trigger["id"]]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"type": "cron", "parameters": {"expression": "99 * * * *"}}, "cron"),
        ({"type": "cron", "parameters": {"expression": "* * * * *", "timezone": "Nowhere/Land"}}, "time zone"),
        ({"type": "interval", "parameters": {"seconds": -5}}, "seconds"),
        ({"type": "date", "parameters": {"at": "tomorrow"}}, "ISO-8601"),
        ({"type": "carrier-pigeon"}, "type"),
        ({"type": "webhook", "surprise": 1}, "surprise"),
    ],
)
def test_bad_trigger_is_400(api: Any, body: dict[str, Any], needle: str) -> None:
    user = register(api)
    status, err = user.post("/api/v1/triggers", body)
    assert status == 400, err
    assert needle in err["error"]["message"]
    assert user.get("/api/v1/triggers")[1]["total"] == 0


def test_rule_validates_trigger_action_and_templates(api: Any) -> None:
    user = register(api)
    _, mine = user.post("/api/v1/triggers", {"type": "webhook"})
    ok = {
        "trigger_id": mine["id"],
        "action_ref": "core.echo",
        "criteria": "{{ trigger.data.level == 'info' }}",
        "parameters": {"message": "{{ trigger.data.msg }}"},
    }
    status, rule = user.post("/api/v1/rules", ok)
    assert status == 201 and rule["enabled"] is True and rule["ref"].startswith("rule-")
    status, err = user.post("/api/v1/rules", {**ok, "action_ref": "nope.missing"})
    assert status == 404 and "nope.missing" in err["error"]["message"]
    status, err = user.post("/api/v1/rules", {**ok, "criteria": "{{ trigger.data.level == }}"})
    assert status == 400 and "criteria" in err["error"]["message"]
    status, err = user.post("/api/v1/rules", {**ok, "trigger_id": "1"})
    assert status == 400 and "trigger_id" in err["error"]["message"]


def test_rule_naming_another_tenants_trigger_or_action_is_404_like_a_missing_one(api: Any) -> None:
    # GIVEN tenant B's webhook trigger and B's own action, and tenant A with nothing of its own
    a, b = register(api, "a"), register(api, "b")
    _, theirs = b.post("/api/v1/triggers", {"type": "webhook"})
    assert b.post("/api/v1/packs", {"ref": "bpack", "version": "1.0.0"})[0] == 201
    status, b_action = b.post("/api/v1/actions", {"ref": "bpack.secret", "runner_type": "shell", "code": "echo"})
    assert status == 201, b_action
    _, mine = a.post("/api/v1/triggers", {"type": "webhook"})
    # WHEN A names B's trigger, or a trigger that exists nowhere
    for trigger_id in (theirs["id"], theirs["id"] + 1000):
        status, err = a.post("/api/v1/rules", {"trigger_id": trigger_id, "action_ref": "core.echo"})
        # THEN both are the same 404 naming the field, not 422, and no rule was made
        assert status == 404, err
        assert err["error"] == {"code": "not_found", "message": f"trigger_id {trigger_id} not found"}
    # AND naming B's action is the same 404 as a missing action, on create and on PATCH
    status, err = a.post("/api/v1/rules", {"trigger_id": mine["id"], "action_ref": "bpack.secret"})
    assert status == 404 and "bpack.secret" in err["error"]["message"], err
    status, rule = a.post("/api/v1/rules", {"trigger_id": mine["id"], "action_ref": "core.echo"})
    assert status == 201, rule
    status, err = a.patch(f"/api/v1/rules/{rule['id']}", {"action_ref": "bpack.secret"})
    assert status == 404 and "bpack.secret" in err["error"]["message"], err
    assert a.get(f"/api/v1/rules/{rule['id']}")[1]["action_ref"] == "core.echo"
    assert a.get("/api/v1/rules")[1]["total"] == 1
    assert b.get("/api/v1/rules")[1]["total"] == 0


def test_rule_patch_disables_and_is_tenant_scoped(api: Any) -> None:
    user = register(api)
    other = register(api)
    _, trigger = user.post("/api/v1/triggers", {"type": "webhook"})
    _, rule = user.post("/api/v1/rules", {"trigger_id": trigger["id"], "action_ref": "core.echo"})
    status, patched = user.patch(f"/api/v1/rules/{rule['id']}", {"enabled": False})
    assert status == 200 and patched["enabled"] is False
    assert user.get(f"/api/v1/rules/{rule['ref']}")[1]["enabled"] is False
    assert other.patch(f"/api/v1/rules/{rule['id']}", {"enabled": True})[0] == 404
    assert other.get(f"/api/v1/rules/{rule['id']}")[0] == 404
    assert other.delete(f"/api/v1/rules/{rule['id']}")[0] == 404
    assert user.get(f"/api/v1/rules/{rule['id']}")[1]["enabled"] is False


def test_lists_paginate_with_totals(api: Any) -> None:
    user = register(api)
    ids = [user.post("/api/v1/triggers", {"type": "webhook"})[1]["id"] for _ in range(7)]
    seen: list[int] = []
    for offset in range(0, 7, 3):
        status, page = user.get(f"/api/v1/triggers?limit=3&offset={offset}")
        assert status == 200 and page["total"] == 7 and page["limit"] == 3 and page["offset"] == offset
        seen += [t["id"] for t in page["items"]]
    assert seen == sorted(ids, reverse=True)
    for query, needle in (("limit=0", "limit"), ("limit=5000", "limit"), ("offset=-1", "offset"), ("limit=x", "limit")):
        status, err = user.get(f"/api/v1/triggers?{query}")
        assert status == 400 and needle in err["error"]["message"]


def test_unknown_and_malformed_ids_are_404(api: Any) -> None:
    user = register(api)
    for path in (
        "/api/v1/triggers/999999",
        "/api/v1/triggers/abc",
        "/api/v1/executions/1%27%20OR%201=1",
        "/api/v1/events/99999999999999999999999",
        "/api/v1/enforcements/0",
    ):
        status, err = user.get(path)
        assert status == 404, path
        assert err["error"]["code"] == "not_found"


def test_events_filter_by_rule_id_keeps_only_the_events_that_rule_matched(api: Any) -> None:
    from tests.integration.test_pipeline import _drain, _post_webhook, _run_rules

    # GIVEN one webhook trigger with two rules (errors only / everything) and a second trigger's rule
    user, other = register(api), register(api)
    _drain("events")
    _drain("work")
    _, trigger = user.post("/api/v1/triggers", {"type": "webhook"})
    _, quiet = user.post("/api/v1/triggers", {"type": "webhook"})
    rule = {"trigger_id": trigger["id"], "action_ref": "core.echo", "parameters": {"message": "x"}}
    _, errors_only = user.post("/api/v1/rules", {**rule, "criteria": "{{ trigger.data.level == 'error' }}"})
    _, everything = user.post("/api/v1/rules", rule)
    _, elsewhere = user.post("/api/v1/rules", {**rule, "trigger_id": quiet["id"]})
    # AND events: an error, an info (both on the first trigger), and one on the second trigger
    ids = {}
    for name, trigger_id, level in (("error", trigger["id"], "error"), ("info", trigger["id"], "info"),
                                     ("quiet", quiet["id"], "info")):
        resp = _post_webhook(user, trigger_id, {"level": level})
        assert resp.status_code == 202, resp.body
        ids[name] = json.loads(resp.body)["event_id"]
    assert _run_rules(_drain("events")) == {"batchItemFailures": []}
    assert user.get("/api/v1/events")[1]["total"] == 3

    def events(query: str) -> list[int]:
        status, body = user.get(f"/api/v1/events?{query}")
        assert status == 200, body
        assert body["total"] == len(body["items"])
        return [e["id"] for e in body["items"]]

    # WHEN filtered by rule THEN only the events that rule enforced, newest first
    assert events(f"rule_id={errors_only['id']}") == [ids["error"]]
    assert events(f"rule_id={everything['id']}") == [ids["info"], ids["error"]]
    assert events(f"rule_id={elsewhere['id']}") == [ids["quiet"]]
    # AND it combines with trigger_id and paginates with a true total
    assert events(f"rule_id={everything['id']}&trigger_id={quiet['id']}") == []
    status, first = user.get(f"/api/v1/events?rule_id={everything['id']}&limit=1")
    assert (first["total"], [e["id"] for e in first["items"]]) == (2, [ids["info"]])
    # AND another tenant filtering by this tenant's rule sees nothing; a missing rule matches nothing
    status, theirs = other.get(f"/api/v1/events?rule_id={everything['id']}")
    assert status == 200 and theirs["total"] == 0 and theirs["items"] == []
    assert events("rule_id=999999") == []


@pytest.mark.parametrize("bad", ["abc", "0", "-1", "1.5", "99999999999999999999999"])
def test_events_bad_rule_id_is_400_naming_it(api: Any, bad: str) -> None:
    status, err = register(api).get(f"/api/v1/events?rule_id={bad}")
    assert status == 400, err
    assert "rule_id" in err["error"]["message"]
