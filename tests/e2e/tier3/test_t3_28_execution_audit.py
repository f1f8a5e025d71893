"""T3.28 Execution audit trail: created (user or rule), scheduled (executor), started and completed (one worker).

Each lifecycle step is audited exactly once (at-least-once delivery must not
double it), with a timestamp inside the execution's life, an actor and an
action; the trail is queryable by `execution_id` and only by its own tenant.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.e2e.client import Cloud, User
from tests.e2e.flow import (
    actions_of,
    audit_trail,
    create_rule,
    enforcements,
    execution_for,
    fire,
    poll,
    run_action,
    wait_final,
    webhook_trigger,
)

LIFECYCLE = ["execution.created", "execution.scheduled", "execution.started", "execution.completed"]
SLACK = timedelta(milliseconds=5)  # timestamps are rendered to the millisecond


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _check_trail(user: User, execution: dict[str, Any]) -> dict[str, dict[str, Any]]:
    trail = audit_trail(user, execution["id"])
    # every entry is about this execution and has a timestamp, an actor and an action
    for entry in trail:
        assert entry["entity_type"] == "execution" and str(entry["entity_id"]) == str(execution["id"]), entry
        assert entry["actor"] and entry["action"] and entry["at"], entry
    # each lifecycle step exactly once, in order
    assert [a for a in actions_of(trail) if a in LIFECYCLE] == LIFECYCLE, actions_of(trail)
    steps = {entry["action"]: entry for entry in trail if entry["action"] in LIFECYCLE}
    ats = [_at(steps[a]["at"]) for a in LIFECYCLE]
    assert ats == sorted(ats), ats
    # timestamps lie within the execution's life
    assert _at(execution["created"]) - SLACK <= ats[0]
    assert _at(execution["started"]) - SLACK <= ats[2] <= _at(execution["finished"]) + SLACK
    assert ats[3] >= _at(execution["finished"]) - SLACK
    # the executor scheduled it; one worker started and completed it
    assert steps["execution.scheduled"]["actor"] == "service:executor"
    worker = steps["execution.started"]["actor"]
    assert worker.startswith("worker:") and len(worker) > len("worker:")
    assert steps["execution.completed"]["actor"] == worker
    return steps


def test_audit_trail_of_a_user_run(cloud: Cloud) -> None:
    # GIVEN a user runs an action
    user = cloud.register("t328")
    execution = run_action(user, "core.echo", {"message": "audited"})
    assert execution["status"] == "succeeded", execution
    # THEN the trail names the user as creator
    steps = _check_trail(user, execution)
    assert steps["execution.created"]["actor"] == f"user:{user.username}"
    # AND the log is invisible to another tenant
    other = cloud.register("t328-other")
    assert other.get("/api/v1/audit", params={"execution_id": execution["id"]}).json()["total"] == 0
    assert len(audit_trail(user, execution["id"])) >= 4


def _audit_row(conn: psycopg.Connection[Any], entry_id: int) -> tuple[Any, ...] | None:
    return conn.execute(
        "SELECT tenant_id, at, actor, action, entity_type, entity_id, detail FROM attune.audit_log WHERE id = %s",
        (entry_id,),
    ).fetchone()


def test_audit_log_refuses_update_and_delete_in_the_database(cloud: Cloud) -> None:
    if cloud.database_url is None:
        pytest.fail("the local cloud did not publish its database URL in cloud.json")
    # GIVEN an execution's audit entry, as the cloud's database holds it
    user = cloud.register("t328-immutable")
    execution = run_action(user, "core.echo", {"message": "immutable"})
    entry = next(e for e in audit_trail(user, execution["id"]) if e["action"] == "execution.created")
    with psycopg.connect(cloud.database_url, autocommit=True) as conn:
        before = _audit_row(conn, entry["id"])
        assert before is not None and before[2] == f"user:{user.username}", before
        # WHEN even the database owner tries to rewrite, delete or truncate it THEN the table refuses
        attempts = {
            "UPDATE": "UPDATE attune.audit_log SET actor = 'user:mallory', detail = '{}' WHERE id = %s",
            "DELETE": "DELETE FROM attune.audit_log WHERE id = %s",
        }
        for op, statement in attempts.items():
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match=f"append-only: {op} refused"):
                conn.execute(statement, (entry["id"],))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only: TRUNCATE refused"):
            conn.execute("TRUNCATE attune.audit_log")
        # AND the role the application runs as has no UPDATE or DELETE privilege at all (a second wall)
        with conn.transaction():
            conn.execute("SET LOCAL ROLE attune_app")
            conn.execute("SET LOCAL attune.rls_bypass = 'on'")
            for statement in attempts.values():
                with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"), conn.transaction():
                    conn.execute(statement, (entry["id"],))
        # AND the entry is exactly as it was, still served by the API
        assert _audit_row(conn, entry["id"]) == before
    assert entry in audit_trail(user, execution["id"])


def test_audit_trail_of_a_rule_run(cloud: Cloud) -> None:
    # GIVEN a rule runs an action for a webhook event
    user = cloud.register("t328-rule")
    trigger = webhook_trigger(user)
    rule = create_rule(user, trigger["id"], "core.echo", parameters={"message": "{{ trigger.data.m }}"})
    fire(cloud, trigger["id"], {"m": "by rule"})
    found = poll(lambda: enforcements(user, rule_id=rule["id"]), "the enforcement", cloud)
    execution = wait_final(user, execution_for(user, found[0]["id"])["id"])
    assert execution["status"] == "succeeded", execution
    # THEN the trail is complete and names the rule (or the rules service), not a user, as creator
    steps = _check_trail(user, execution)
    creator = steps["execution.created"]["actor"]
    assert creator == f"rule:{rule['ref']}" or creator.startswith("service:"), creator
