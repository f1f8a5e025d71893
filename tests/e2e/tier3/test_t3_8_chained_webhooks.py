"""T3.8 Chained webhook triggers: action A POSTs to webhook B, whose rule runs action B; loops end at a depth limit.

Action A fires B's webhook with the `attune_action` helper (`emit`, with its
execution-scoped token), so B's event and execution carry A's chain: one
`trace` id, one level deeper, visible end to end with
`GET /api/v1/executions?trace=`. An action that fires its own rule's webhook
goes round until the chain is `ATTUNE_MAX_CHAIN_DEPTH` (10) deep; the next
event is recorded `suppressed`, with the reason, and nothing more runs.
"""

from __future__ import annotations

from typing import Any

from tests.e2e.client import Cloud, User
from tests.e2e.flow import (
    RETURN_PARAMS_PY,
    action_files,
    create_rule,
    fire,
    items,
    poll,
    register_pack,
    unique_ref,
    wait_final,
    webhook_trigger,
)

MAX_CHAIN_DEPTH = 10  # the default; the e2e cloud does not change it

# Action A: on completion it POSTs to the webhook URL it is given (seed step 1).
POST_TO_WEBHOOK_PY = """\
import attune_action


def run(webhook_url, message="from A"):
    answer = attune_action.emit(webhook_url, {"message": message, "sent_by": "A"})
    return {"emitted": answer}
"""
URL_PARAMETERS: dict[str, Any] = {"webhook_url": {"type": "string", "required": True},
                                  "message": {"type": "string", "default": "from A"}}


def chain_pack(user: User) -> str:
    ref = unique_ref("t38")
    files = {**action_files("post_to_webhook", "python3", POST_TO_WEBHOOK_PY, URL_PARAMETERS),
             **action_files("receive", "python3", RETURN_PARAMS_PY,
                            {"message": {"type": "string"}, "sent_by": {"type": "string"}})}
    register_pack(user, ref, files)
    return ref


def test_action_a_fires_webhook_b_and_rule_b_runs_on_the_same_chain(cloud: Cloud) -> None:
    user = cloud.register("t38")
    ref = chain_pack(user)
    # GIVEN webhook trigger B and rule B: webhook B -> action B (steps 2-3)
    trigger_b = webhook_trigger(user)
    rule_b = create_rule(user, trigger_b["id"], f"{ref}.receive",
                         parameters={"message": "{{ trigger.data.message }}", "sent_by": "{{ trigger.data.sent_by }}"})

    # WHEN action A runs (step 4)
    resp = user.post("/api/v1/executions", {"action_ref": f"{ref}.post_to_webhook",
                                            "parameters": {"webhook_url": trigger_b["webhook_url"]}})
    assert resp.status_code == 201, resp.text
    a = wait_final(user, resp.json()["id"])

    # THEN A completes, having POSTed to webhook B (steps 5-6)
    assert a["status"] == "succeeded", a
    emitted = a["result"]["output"]["emitted"]
    assert emitted["status"] == "accepted" and emitted["trace"] == a["trace"] and emitted["depth"] == a["depth"] + 1
    # AND webhook B created the event, from A's execution (step 7)
    (event,) = items(user, "/api/v1/events", trigger_id=trigger_b["id"])
    assert event["id"] == emitted["event_id"] and event["payload"] == {"message": "from A", "sent_by": "A"}
    assert event["source_execution_id"] == a["id"] and event["trace"] == a["trace"]
    # AND rule B fired and action B ran with A's payload (step 8)
    enforcement = poll(lambda: items(user, "/api/v1/enforcements", rule_id=rule_b["id"]), "rule B's enforcement",
                       cloud)[0]
    b = wait_final(user, poll(lambda: items(user, "/api/v1/executions", enforcement_id=enforcement["id"]),
                              "action B's execution", cloud)[0]["id"])
    assert b["status"] == "succeeded" and b["result"]["output"] == {"message": "from A", "sent_by": "A"}
    # AND the chain is visible end to end: one trace, A then B, one level apart
    chain = items(user, "/api/v1/executions", trace=a["trace"])
    assert [(x["action_ref"], x["depth"]) for x in reversed(chain)] == [
        (f"{ref}.post_to_webhook", a["depth"]), (f"{ref}.receive", a["depth"] + 1)]


def test_a_self_loop_stops_at_the_depth_limit_with_a_suppressed_event(cloud: Cloud) -> None:
    user = cloud.register("t38loop")
    ref = chain_pack(user)
    # GIVEN webhook A whose rule runs the action that POSTs to webhook A (a circular dependency)
    trigger = webhook_trigger(user)
    rule = create_rule(user, trigger["id"], f"{ref}.post_to_webhook",
                       parameters={"webhook_url": trigger["webhook_url"], "message": "again"})

    # WHEN an outside system calls webhook A once
    first = fire(cloud, trigger["id"], {"message": "start"})
    trace = user.get(f"/api/v1/events/{first}").json()["trace"]

    # THEN the loop goes round until the chain is MAX_CHAIN_DEPTH deep, and the next event is suppressed
    suppressed = poll(lambda: items(user, "/api/v1/events", trace=trace, status="suppressed"),
                      "the suppressed event", cloud, timeout=120)
    assert len(suppressed) == 1 and suppressed[0]["depth"] == MAX_CHAIN_DEPTH + 1
    assert "ATTUNE_MAX_CHAIN_DEPTH" in suppressed[0]["reason"] and "loop" in suppressed[0]["reason"]
    # AND every turn ran once: depths 0..10, all finished, each emitting exactly one event of the chain
    runs = poll(lambda: (xs := items(user, "/api/v1/executions", trace=trace)) and len(xs) == MAX_CHAIN_DEPTH + 1
                and all(x["status"] == "succeeded" for x in xs) and xs, "every turn to finish", cloud, timeout=60)
    assert sorted(x["depth"] for x in runs) == list(range(MAX_CHAIN_DEPTH + 1))
    assert {x["action_ref"] for x in runs} == {f"{ref}.post_to_webhook"}
    deepest = wait_final(user, next(x["id"] for x in runs if x["depth"] == MAX_CHAIN_DEPTH))
    assert deepest["result"]["output"]["emitted"]["status"] == "suppressed"
    assert deepest["result"]["output"]["emitted"]["event_id"] == suppressed[0]["id"]
    events = items(user, "/api/v1/events", trace=trace)
    assert sorted(e["depth"] for e in events) == list(range(MAX_CHAIN_DEPTH + 2))
    assert [e["status"] for e in events].count("accepted") == MAX_CHAIN_DEPTH + 1
    # AND the suppressed event was never evaluated: no enforcement for it, nothing beyond the limit
    assert items(user, "/api/v1/enforcements", event_id=suppressed[0]["id"]) == []
    assert len(items(user, "/api/v1/enforcements", rule_id=rule["id"])) == MAX_CHAIN_DEPTH + 1
