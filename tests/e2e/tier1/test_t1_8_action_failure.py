"""T1.8 Action execution failure: the seed's failing action ends `failed` with its exit code, stderr and error.

No retry policy, so exactly one execution and `retry_count` 0; the audit trail
shows requested → scheduled → running → failed (created, scheduled, started,
completed), run directly and through a rule.
"""

from __future__ import annotations

from datetime import datetime

from tests.e2e.client import Cloud, User
from tests.e2e.flow import (
    action_files,
    actions_of,
    audit_trail,
    create_rule,
    enforcements,
    execution_for,
    fire,
    items,
    poll,
    register_pack,
    unique_ref,
    wait_final,
    webhook_trigger,
)

FAIL_PY = """\
#!/usr/bin/env python3
import sys
print("Starting action...", file=sys.stderr)
sys.exit(1)  # Force failure
"""
LIFECYCLE = ["execution.created", "execution.scheduled", "execution.started", "execution.completed"]


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _failing_action(user: User) -> str:
    ref = unique_ref("t18")
    register_pack(user, ref, action_files("fail", "python3", FAIL_PY))
    return f"{ref}.fail"


def _assert_failed_once(user: User, execution: dict[str, object], action_ref: str) -> None:
    # THEN failed, with the exit code, the stderr line and an error
    assert execution["status"] == "failed", execution
    result = execution["result"]
    assert isinstance(result, dict)
    assert result["exit_code"] == 1, result
    assert "Starting action..." in result["stderr"], result
    assert result["error"] and "exit code 1" in result["error"], result
    # AND no retry: retry_count 0 and exactly one execution of the action
    assert execution["retry_count"] == 0
    assert [e["id"] for e in items(user, "/api/v1/executions", action_ref=action_ref)] == [execution["id"]]
    # AND it ran: started and finished are set, in order
    assert isinstance(execution["started"], str) and isinstance(execution["finished"], str)
    assert isinstance(execution["created"], str)
    assert _at(execution["created"]) <= _at(execution["started"]) <= _at(execution["finished"])

    # AND the audit trail shows requested → scheduled → running → failed, each step once, in that order
    trail = audit_trail(user, int(str(execution["id"])))
    lifecycle = [a for a in actions_of(trail) if a in LIFECYCLE]
    assert lifecycle == LIFECYCLE, actions_of(trail)
    ats = [_at(e["at"]) for e in trail if e["action"] in LIFECYCLE]
    assert ats == sorted(ats)
    started = next(e for e in trail if e["action"] == "execution.started")
    completed = next(e for e in trail if e["action"] == "execution.completed")
    assert started["actor"].startswith("worker:") and completed["actor"] == started["actor"]


def test_failing_action_run_directly(cloud: Cloud) -> None:
    # GIVEN the seed's action that prints to stderr and exits 1
    user = cloud.register("t18")
    action_ref = _failing_action(user)
    # WHEN it is executed
    resp = user.post("/api/v1/executions", {"action_ref": action_ref, "parameters": {}})
    assert resp.status_code == 201, resp.text
    assert resp.json()["status"] in ("requested", "scheduled")
    execution = wait_final(user, resp.json()["id"])
    _assert_failed_once(user, execution, action_ref)
    # AND the system is still healthy and runs the next action
    assert cloud.http.get("/health").status_code == 200


def test_failing_action_run_by_a_rule(cloud: Cloud) -> None:
    # GIVEN a rule linking a webhook to the failing action
    user = cloud.register("t18-rule")
    action_ref = _failing_action(user)
    trigger = webhook_trigger(user)
    rule = create_rule(user, trigger["id"], action_ref)
    # WHEN the webhook fires
    event_id = fire(cloud, trigger["id"], {"reason": "test"})
    # THEN one enforcement, one execution, failed like the direct run
    found = poll(lambda: enforcements(user, rule_id=rule["id"]), "the enforcement", cloud)
    assert len(found) == 1 and found[0]["event_id"] == event_id
    execution = wait_final(user, execution_for(user, found[0]["id"])["id"])
    assert execution["enforcement_id"] == found[0]["id"]
    _assert_failed_once(user, execution, action_ref)
    assert len(enforcements(user, rule_id=rule["id"])) == 1
    # AND the enforcement followed its execution to `failed`, with the execution's error
    final = poll(
        lambda: next((e for e in enforcements(user, rule_id=rule["id"]) if e["status"] == "failed"), None),
        "the enforcement to fail with its execution",
        cloud,
    )
    assert final["id"] == found[0]["id"]
    assert final["error"] == execution["result"]["error"], final
