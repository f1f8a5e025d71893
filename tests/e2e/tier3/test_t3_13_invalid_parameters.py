"""T3.13 Invalid action parameters: a missing required `url` fails the execution at once, before any worker.

Status goes requested → failed (never scheduled or running), the error says
"Missing required parameter: url", and the audit trail has no
`execution.started`; the same through a rule. The action would record in the
datastore that it ran, so a run that should not have happened would show.
"""

from __future__ import annotations

from typing import Any

from tests.e2e.client import Cloud, User
from tests.e2e.flow import (
    action_files,
    actions_of,
    audit_trail,
    create_rule,
    enforcements,
    execution_for,
    fire,
    get_execution,
    poll,
    register_pack,
    run_action,
    unique_ref,
    wait_final,
    webhook_trigger,
)

FETCH_PY = """\
import os

import attune_action


def run(url, retries=1):
    attune_action.datastore_set("ran_" + os.environ["ATTUNE_EXECUTION_ID"], True)
    return {"url": url, "retries": retries}
"""
FETCH_PARAMETERS = {"url": {"type": "string", "required": True}, "retries": {"type": "integer", "default": 1}}
MISSING_URL = "Missing required parameter: url"


def _fetch_action(user: User) -> str:
    ref = unique_ref("t313")
    register_pack(user, ref, action_files("fetch", "python3", FETCH_PY, FETCH_PARAMETERS))
    return f"{ref}.fetch"


def _assert_never_ran(user: User, execution: dict[str, Any], expected_error: str) -> None:
    assert execution["status"] == "failed", execution
    assert expected_error in execution["result"]["error"], execution["result"]
    assert execution["started"] is None, execution
    assert execution["retry_count"] == 0
    actions = actions_of(audit_trail(user, execution["id"]))
    assert "execution.created" in actions, actions
    assert "execution.scheduled" not in actions and "execution.started" not in actions, actions


def test_missing_required_parameter_fails_at_once(cloud: Cloud) -> None:
    # GIVEN an action with a required `url`
    user = cloud.register("t313")
    action_ref = _fetch_action(user)

    # WHEN it is executed without `url`
    resp = user.post("/api/v1/executions", {"action_ref": action_ref, "parameters": {"retries": 2}})

    # THEN the answer already says failed, with the clear message
    assert resp.status_code == 201, resp.text
    assert resp.json()["status"] == "failed", resp.json()
    assert MISSING_URL in resp.json()["result"]["error"]
    missing = get_execution(user, resp.json()["id"])
    _assert_never_ran(user, missing, MISSING_URL)

    # AND a wrongly typed `url` is refused the same way, by the action's JSON Schema
    typed = user.post("/api/v1/executions", {"action_ref": action_ref, "parameters": {"url": 42}})
    assert typed.status_code == 201 and typed.json()["status"] == "failed", typed.text
    _assert_never_ran(user, get_execution(user, typed.json()["id"]), "url")

    # WHEN a valid execution of the same action then runs to the end
    valid = run_action(user, action_ref, {"url": "https://example.com"})
    assert valid["status"] == "succeeded", valid
    assert valid["result"]["output"] == {"url": "https://example.com", "retries": 1}
    assert user.get(f"/api/v1/datastore/ran_{valid['id']}").status_code == 200
    # THEN the invalid ones are still failed and never ran
    for execution_id in (missing["id"], typed.json()["id"]):
        _assert_never_ran(user, get_execution(user, execution_id), "url")
        assert user.get(f"/api/v1/datastore/ran_{execution_id}").status_code == 404


def test_missing_required_parameter_via_a_rule(cloud: Cloud) -> None:
    # GIVEN a rule whose parameters lack `url`
    user = cloud.register("t313-rule")
    action_ref = _fetch_action(user)
    trigger = webhook_trigger(user)
    rule = create_rule(user, trigger["id"], action_ref, parameters={"retries": "{{ trigger.data.retries }}"})

    # WHEN the webhook fires
    event_id = fire(cloud, trigger["id"], {"retries": 3})

    # THEN the rule's execution failed at once with the clear message and never ran
    found = poll(lambda: enforcements(user, rule_id=rule["id"]), "the enforcement", cloud)
    assert len(found) == 1 and found[0]["event_id"] == event_id
    execution = wait_final(user, execution_for(user, found[0]["id"])["id"])
    _assert_never_ran(user, execution, MISSING_URL)
    assert execution["enforcement_id"] == found[0]["id"]
    assert user.get(f"/api/v1/datastore/ran_{execution['id']}").status_code == 404
