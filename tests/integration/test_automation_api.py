"""Triggers and rules: validation at creation, tenancy, patching."""

from __future__ import annotations

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
    other = register(api)
    _, mine = user.post("/api/v1/triggers", {"type": "webhook"})
    _, theirs = other.post("/api/v1/triggers", {"type": "webhook"})
    ok = {
        "trigger_id": mine["id"],
        "action_ref": "core.echo",
        "criteria": "{{ trigger.data.level == 'info' }}",
        "parameters": {"message": "{{ trigger.data.msg }}"},
    }
    status, rule = user.post("/api/v1/rules", ok)
    assert status == 201 and rule["enabled"] is True and rule["ref"].startswith("rule-")
    status, err = user.post("/api/v1/rules", {**ok, "trigger_id": theirs["id"]})
    assert status == 422 and "trigger_id" in err["error"]["message"]
    status, err = user.post("/api/v1/rules", {**ok, "action_ref": "nope.missing"})
    assert status == 422 and "nope.missing" in err["error"]["message"]
    status, err = user.post("/api/v1/rules", {**ok, "criteria": "{{ trigger.data.level == }}"})
    assert status == 400 and "criteria" in err["error"]["message"]
    status, err = user.post("/api/v1/rules", {**ok, "trigger_id": "1"})
    assert status == 400 and "trigger_id" in err["error"]["message"]


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
