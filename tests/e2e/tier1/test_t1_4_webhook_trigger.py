"""T1.4 Webhook trigger with payload: POST → event (payload = body) → rule → execution that sees the fields.

Plus the webhook's edges: HMAC signatures (right 202; wrong or missing 401 and
nothing stored), bodies over 1 MiB (413), disabled and unknown triggers (404).
"""

from __future__ import annotations

import json
import secrets

from tests.e2e.client import Cloud, User
from tests.e2e.flow import (
    RETURN_PARAMS_PY,
    action_files,
    create_rule,
    enforcements,
    execution_for,
    items,
    poll,
    post_webhook,
    register_pack,
    sign,
    unique_ref,
    wait_final,
    webhook_trigger,
)

PAYLOAD = {
    "event_type": "user.signup",
    "user_id": 12345,
    "email": "test@example.com",
    "metadata": {"source": "web", "campaign": "spring2024"},
}
SIGNUP_PARAMETERS = {
    "event_type": {"type": "string", "required": True},
    "user_id": {"type": "integer", "required": True},
    "email": {"type": "string", "required": True},
    "metadata": {"type": "object", "required": True},
}
MIB = 1024 * 1024


def _events(user: User, trigger_id: int) -> list[int]:
    return [e["id"] for e in items(user, "/api/v1/events", trigger_id=trigger_id)]


def test_webhook_payload_reaches_the_action(cloud: Cloud) -> None:
    # GIVEN an action that returns its parameters, and a rule mapping each payload field onto one
    user = cloud.register("t14")
    ref = unique_ref("t14")
    register_pack(user, ref, action_files("signup", "python3", RETURN_PARAMS_PY, SIGNUP_PARAMETERS))
    trigger = webhook_trigger(user)
    assert trigger["webhook_url"] == f"/api/v1/webhooks/{trigger['id']}"
    assert not trigger.get("hmac")
    rule = create_rule(
        user, trigger["id"], f"{ref}.signup", parameters={k: f"{{{{ trigger.data.{k} }}}}" for k in PAYLOAD}
    )

    # WHEN the seed's payload is POSTed to the webhook URL, without a bearer token
    resp = cloud.http.post(trigger["webhook_url"], json=PAYLOAD)

    # THEN it is accepted and the event exists at once, its payload equal to the body
    assert resp.status_code == 202, resp.text
    event_id = resp.json()["event_id"]
    event = user.get(f"/api/v1/events/{event_id}")
    assert event.status_code == 200, event.text
    assert event.json()["payload"] == PAYLOAD
    assert event.json()["trigger_id"] == trigger["id"]
    assert _events(user, trigger["id"]) == [event_id]

    # AND the rule made one enforcement for it, and that one execution
    enforcement = poll(lambda: enforcements(user, rule_id=rule["id"]), "the enforcement", cloud)
    assert len(enforcement) == 1 and enforcement[0]["event_id"] == event_id
    assert enforcement[0]["trigger_id"] == trigger["id"]
    execution = wait_final(user, execution_for(user, enforcement[0]["id"])["id"])

    # AND the execution received the payload fields as parameters, types kept (user_id an int, metadata an object)
    assert execution["status"] == "succeeded", execution
    assert execution["enforcement_id"] == enforcement[0]["id"]
    assert execution["action_ref"] == f"{ref}.signup"
    assert execution["parameters"] == PAYLOAD
    # AND the action's output contains them
    assert execution["result"]["output"] == PAYLOAD
    assert execution["result"]["exit_code"] == 0
    # AND the enforcement followed its execution to `succeeded`, with no error
    final = poll(
        lambda: next((e for e in enforcements(user, rule_id=rule["id"]) if e["status"] == "succeeded"), None),
        "the enforcement to succeed with its execution",
        cloud,
    )
    assert final["id"] == enforcement[0]["id"] and final["error"] is None, final


def test_hmac_signed_webhook(cloud: Cloud) -> None:
    # GIVEN a webhook trigger with an HMAC secret
    user = cloud.register("t14-hmac")
    secret = secrets.token_hex(16)
    created = user.post("/api/v1/triggers", {"type": "webhook", "secret": secret})
    assert created.status_code == 201, created.text
    trigger = created.json()
    # THEN the secret is never shown, only that the trigger is signed
    one, listed = user.get(f"/api/v1/triggers/{trigger['id']}"), user.get("/api/v1/triggers")
    assert one.status_code == 200 and listed.status_code == 200
    for shown in (created.text, one.text, listed.text):
        assert secret not in shown
    assert trigger["hmac"] is True and "secret" not in trigger
    assert one.json()["hmac"] is True and "secret" not in one.json()

    body = json.dumps({"alert": "disk full", "host": "db-1"}).encode()
    # WHEN signed correctly THEN accepted and stored
    good = post_webhook(cloud, trigger["id"], raw=body, headers={"X-Attune-Signature": sign(secret, body)})
    assert good.status_code == 202, good.text
    good_event = good.json()["event_id"]

    # WHEN the signature is missing, made with another secret, for another body, malformed, or another algorithm
    other_body = json.dumps({"alert": "disk fine", "host": "db-1"}).encode()
    digest = sign(secret, body).removeprefix("sha256=")
    refused = {
        "missing": {},
        "wrong secret": {"X-Attune-Signature": sign(secret + "x", body)},
        "other body": {"X-Attune-Signature": sign(secret, other_body)},
        "bare hex": {"X-Attune-Signature": digest},
        "sha1 label": {"X-Attune-Signature": "sha1=" + digest},
        "truncated": {"X-Attune-Signature": "sha256=" + digest[:-2]},
        "empty": {"X-Attune-Signature": ""},
    }
    for name, headers in refused.items():
        resp = post_webhook(cloud, trigger["id"], raw=body, headers=headers)
        # THEN 401 with the error contract
        assert resp.status_code == 401, (name, resp.status_code, resp.text)
        assert "error" in resp.json(), name
    # AND nothing but the signed event was stored
    assert _events(user, trigger["id"]) == [good_event]
    assert user.get(f"/api/v1/events/{good_event}").json()["payload"] == json.loads(body)


def test_webhook_body_over_1_mib_is_413(cloud: Cloud) -> None:
    user = cloud.register("t14-big")
    trigger = webhook_trigger(user)
    # WHEN a body just over 1 MiB is POSTed THEN 413, nothing stored
    too_big = json.dumps({"blob": "x" * MIB}).encode()
    assert len(too_big) > MIB
    resp = post_webhook(cloud, trigger["id"], raw=too_big)
    assert resp.status_code == 413, (resp.status_code, resp.text[:300])
    assert _events(user, trigger["id"]) == []
    # AND a large body under the limit is accepted, so the 413 was about size
    fits = json.dumps({"blob": "y" * (MIB - 4096)}).encode()
    assert len(fits) < MIB
    ok = post_webhook(cloud, trigger["id"], raw=fits)
    assert ok.status_code == 202, (ok.status_code, ok.text[:300])
    assert _events(user, trigger["id"]) == [ok.json()["event_id"]]


def test_disabled_and_unknown_triggers_are_404(cloud: Cloud) -> None:
    user = cloud.register("t14-404")
    trigger = webhook_trigger(user)
    # GIVEN a disabled webhook trigger
    patched = user.patch(f"/api/v1/triggers/{trigger['id']}", {"enabled": False})
    assert patched.status_code == 200 and patched.json()["enabled"] is False
    # WHEN it is called THEN 404 and nothing stored
    resp = post_webhook(cloud, trigger["id"], {"x": 1})
    assert resp.status_code == 404, resp.text
    assert resp.json()["error"]["code"] == "not_found"
    assert _events(user, trigger["id"]) == []
    # AND once enabled again it accepts events
    assert user.patch(f"/api/v1/triggers/{trigger['id']}", {"enabled": True}).status_code == 200
    assert post_webhook(cloud, trigger["id"], {"x": 2}).status_code == 202
    assert len(_events(user, trigger["id"])) == 1
    # AND a trigger that does not exist (or was deleted) is 404
    assert post_webhook(cloud, 9_000_000_000, {"x": 3}).status_code == 404
    gone = webhook_trigger(user)
    assert user.delete(f"/api/v1/triggers/{gone['id']}").status_code == 200
    assert post_webhook(cloud, gone["id"], {"x": 4}).status_code == 404
