"""T1.7 Multi-tenant isolation: another tenant's resources are invisible (404), whatever the trick."""

from __future__ import annotations

import base64
import json
import uuid

import jwt

from tests.e2e.client import Cloud, User
from tests.e2e.flow import enforcements, execution_for, fire, items, poll, wait_final
from tests.e2e.packs import echo_pack


def _setup_tenant_a(a: User) -> dict[str, int | str]:
    ref = f"pack_{uuid.uuid4().hex[:8]}"
    pack = a.post("/api/v1/packs", echo_pack(ref))
    assert pack.status_code == 201, pack.text
    action = a.get(f"/api/v1/actions/{ref}.hello")
    assert action.status_code == 200, action.text
    trigger = a.post("/api/v1/triggers", {"type": "webhook"}).json()
    rule = a.post("/api/v1/rules", {"trigger_id": trigger["id"], "action_ref": f"{ref}.hello",
                                    "parameters": {"message": "{{ trigger.data.message }}"}})
    assert rule.status_code == 201, rule.text
    assert a.post("/api/v1/datastore", {"key": "secret_cfg", "value": "a-only"}).status_code in (200, 201)
    execution = a.post("/api/v1/executions", {"action_ref": f"{ref}.hello", "parameters": {"message": "hi"}})
    assert execution.status_code == 201, execution.text
    return {
        "pack_id": pack.json()["id"],
        "pack_ref": ref,
        "action_id": action.json()["id"],
        "action_ref": f"{ref}.hello",
        "trigger_id": trigger["id"],
        "rule_id": rule.json()["id"],
        "execution_id": execution.json()["id"],
    }


def _fire_and_wait(a: User, ids: dict[str, int | str]) -> dict[str, int]:
    """Fire A's webhook and wait until A sees the event, its enforcement and that execution, finished."""
    event_id = fire(a.cloud, ids["trigger_id"], {"message": "tenant-a-only"})
    poll(lambda: a.get(f"/api/v1/events/{event_id}").status_code == 200, f"A's event {event_id}", a.cloud)
    (enforcement,) = poll(lambda: enforcements(a, event_id=event_id), f"the enforcement of event {event_id}", a.cloud)
    execution = execution_for(a, enforcement["id"])
    done = wait_final(a, execution["id"])
    assert done["status"] == "succeeded", done
    return {"event_id": event_id, "enforcement_id": enforcement["id"], "rule_execution_id": execution["id"]}


def test_tenant_b_sees_nothing_of_tenant_a(cloud: Cloud) -> None:
    # GIVEN tenant A with a pack, action, trigger, rule, datastore item and execution
    a, b = cloud.register("tenant-a"), cloud.register("tenant-b")
    ids = _setup_tenant_a(a)
    # AND A's webhook fired: an event, its enforcement and the execution the rule made, all seen by A
    fired = _fire_and_wait(a, ids)
    assert fired["event_id"] in {e["id"] for e in items(a, "/api/v1/events")}
    assert fired["enforcement_id"] in {e["id"] for e in items(a, "/api/v1/enforcements")}
    assert {fired["rule_execution_id"], ids["execution_id"]} <= {e["id"] for e in items(a, "/api/v1/executions")}

    # WHEN tenant B lists THEN it sees none of A's resources (system packs only)
    packs = b.get("/api/v1/packs").json()["items"]
    assert all(p.get("system") for p in packs) and ids["pack_ref"] not in {p["ref"] for p in packs}
    for path in (
        "/api/v1/rules",
        "/api/v1/triggers",
        "/api/v1/executions",
        "/api/v1/datastore",
        "/api/v1/events",
        "/api/v1/enforcements",
    ):
        listing = b.get(path)
        assert listing.status_code == 200, path
        assert listing.json()["total"] == 0, (path, listing.json())
    # AND not even when filtering by A's own trigger, rule or event
    for path, params in (
        ("/api/v1/events", {"trigger_id": ids["trigger_id"]}),
        ("/api/v1/events", {"rule_id": ids["rule_id"]}),
        ("/api/v1/enforcements", {"rule_id": ids["rule_id"]}),
        ("/api/v1/enforcements", {"event_id": fired["event_id"]}),
        ("/api/v1/executions", {"enforcement_id": fired["enforcement_id"]}),
    ):
        assert items(b, path, **params) == [], (path, params)
    audit = b.get("/api/v1/audit?limit=1000").json()["items"]
    assert audit and {entry["actor"] for entry in audit} == {f"user:{b.username}"}
    assert not [x for x in b.get("/api/v1/actions?limit=1000").json()["items"] if x["ref"] == ids["action_ref"]]

    # AND direct ID access is 404, never 403
    for path in (
        f"/api/v1/packs/{ids['pack_id']}",
        f"/api/v1/packs/{ids['pack_ref']}",
        f"/api/v1/actions/{ids['action_id']}",
        f"/api/v1/actions/{ids['action_ref']}",
        f"/api/v1/triggers/{ids['trigger_id']}",
        f"/api/v1/rules/{ids['rule_id']}",
        f"/api/v1/executions/{ids['execution_id']}",
        f"/api/v1/events/{fired['event_id']}",
        f"/api/v1/enforcements/{fired['enforcement_id']}",
        f"/api/v1/executions/{fired['rule_execution_id']}",
        "/api/v1/datastore/secret_cfg",
    ):
        resp = b.get(path)
        assert resp.status_code == 404, (path, resp.text)
        assert resp.json()["error"]["code"] == "not_found"
        assert a.get(path).status_code == 200, path  # the same path is A's: the 404 is isolation, not a typo
    assert b.delete(f"/api/v1/packs/{ids['pack_id']}").status_code == 404
    assert b.delete(f"/api/v1/rules/{ids['rule_id']}").status_code == 404
    assert b.patch(f"/api/v1/rules/{ids['rule_id']}", {"enabled": False}).status_code == 404
    assert b.delete(f"/api/v1/triggers/{ids['trigger_id']}").status_code == 404
    assert b.post(f"/api/v1/executions/{fired['rule_execution_id']}/cancel").status_code == 404

    # AND B cannot run A's action or hang a rule on A's trigger (404, as for a trigger that does not exist)
    run = b.post("/api/v1/executions", {"action_ref": ids["action_ref"], "parameters": {"message": "x"}})
    assert run.status_code == 404
    rule = b.post("/api/v1/rules", {"trigger_id": ids["trigger_id"], "action_ref": "core.echo"})
    assert rule.status_code == 404, rule.text
    assert rule.json()["error"]["code"] == "not_found"

    # AND A still sees and runs its own resources, untouched
    assert a.get(f"/api/v1/rules/{ids['rule_id']}").json()["enabled"] is True
    assert a.get("/api/v1/datastore/secret_cfg").json()["value"] == "a-only"
    again = a.post("/api/v1/executions", {"action_ref": ids["action_ref"], "parameters": {"message": "again"}})
    assert again.status_code == 201


def test_guessing_ids_finds_nothing(cloud: Cloud) -> None:
    a, b = cloud.register("tenant-a"), cloud.register("tenant-b")
    ids = _setup_tenant_a(a)
    for offset in range(-3, 4):
        for kind in ("executions", "rules", "triggers", "packs", "actions"):
            key = {
                "executions": "execution_id",
                "rules": "rule_id",
                "triggers": "trigger_id",
                "packs": "pack_id",
                "actions": "action_id",
            }[kind]
            guess = int(ids[key]) + offset
            if guess < 1:
                continue
            resp = b.get(f"/api/v1/{kind}/{guess}")
            if resp.status_code == 200:
                assert resp.json().get("system"), f"B read a non-system {kind} {guess}"
            else:
                assert resp.status_code == 404


def test_injection_attempts_are_inert(cloud: Cloud) -> None:
    a, b = cloud.register("tenant-a"), cloud.register("tenant-b")
    _setup_tenant_a(a)
    attacks = ["1 OR 1=1", "1' OR '1'='1", "1; DROP TABLE attune.execution; --", "%27%20OR%201%3D1--"]
    for attack in attacks:
        for path in (f"/api/v1/executions/{attack}", f"/api/v1/datastore/{attack}", f"/api/v1/rules/{attack}"):
            resp = b.get(path)
            assert resp.status_code in (400, 404), (path, resp.status_code)
        listing = b.get("/api/v1/executions", params={"action_ref": attack})
        assert listing.status_code == 200 and listing.json()["total"] == 0
        login = cloud.http.post("/auth/login", json={"username": f"{a.username}' --", "password": attack})
        assert login.status_code in (400, 401)
    # The tables are intact and A's data is still there.
    assert a.get("/api/v1/executions").json()["total"] == 1


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_forged_tokens_are_refused(cloud: Cloud) -> None:
    a, b = cloud.register("tenant-a"), cloud.register("tenant-b")
    _setup_tenant_a(a)
    claims = jwt.decode(b.token, options={"verify_signature": False})
    stolen = {**claims, "tid": a.tenant_id, "role": "admin"}
    head, _, sig = b.token.split(".")
    forgeries = {
        "alg=none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(stolen)}.",
        "alg=None no dot": f"{_b64({'alg': 'None'})}.{_b64(stolen)}",
        "tampered payload": f"{head}.{_b64(stolen)}.{sig}",
        "guessed key": jwt.encode(stolen, "secret", algorithm="HS256"),
        "HS512 with guessed key": jwt.encode(stolen, "attune" * 12, algorithm="HS512"),
        "expired": jwt.encode({**stolen, "exp": 1}, "secret", algorithm="HS256"),
    }
    for name, token in forgeries.items():
        resp = cloud.http.get("/api/v1/executions", headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 401, name
        assert resp.json()["error"]["code"] == "unauthorized", name
    # The genuine token still works and still sees only B's (empty) tenant.
    assert b.get("/api/v1/executions").json()["total"] == 0
