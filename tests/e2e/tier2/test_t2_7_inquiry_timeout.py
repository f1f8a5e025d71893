"""T2.7 Inquiry timeout: an unanswered inquiry expires after its TTL and the workflow goes on with the default.

TTL 5 s with a default; nobody answers. The inquiry stays `pending` for the
TTL (not expired before ~4.5 s), then is `expired` within ~5-8 s; the
inquiry's execution succeeds with the default, the next task receives it, the
workflow succeeds. An answer after the expiry is a 409. Without a default the
expired inquiry's execution fails with "inquiry expired". The expiry is in the
audit trail.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest

from tests.e2e.client import Cloud
from tests.e2e.flow import audit_trail, items
from tests.e2e.workflow_flow import (
    RETURN_PARAMS_PY,
    at,
    children,
    create_workflow,
    get_inquiry,
    new_pack,
    now,
    of_task,
    output,
    pack_action,
    respond,
    start,
    untyped,
    wait_done,
    wait_inquiry,
    wait_status,
)

# Runs alone on the cloud (tests/e2e/run.py): its criterion is a timing tolerance (the expiry time).
pytestmark = pytest.mark.serial

YES_NO = {"type": "object", "properties": {"approved": {"type": "boolean"}}, "required": ["approved"]}
DEFAULT = {"approved": False, "reason": "timed out"}


def test_inquiry_expires_and_the_default_is_used(cloud: Cloud) -> None:
    user = cloud.register("t27")
    pack = new_pack(user, "t27", pack_action("after", "python3", RETURN_PARAMS_PY, untyped("approved", "reason")))
    # GIVEN a workflow whose inquiry has a 5 s TTL and a default
    ref = create_workflow(user, pack, "wf", [
        {"name": "approve", "inquiry": {"prompt": "Approve?", "schema": YES_NO, "ttl": 5, "default": DEFAULT}},
        {"name": "after", "action": f"{pack}.after", "depends_on": ["approve"],
         "input": {"approved": "{{ approve.result.approved }}", "reason": "{{ approve.result.reason }}"}},
    ])
    # WHEN it runs and nobody answers
    workflow_id = start(user, ref)
    inquiry = wait_inquiry(user, workflow_execution_id=workflow_id)
    created = at(inquiry["created"])
    assert timedelta(seconds=4.9) <= at(inquiry["timeout_at"]) - created <= timedelta(seconds=5.1), str(inquiry)
    wait_status(user, workflow_id, "paused", timeout=4)

    # THEN it stays pending for the TTL, then becomes expired within ~5-8 s of its creation
    statuses: list[tuple[float, str]] = []
    deadline = created + timedelta(seconds=9)
    while now() < deadline:
        status = get_inquiry(user, inquiry["id"])["status"]
        statuses.append(((now() - created).total_seconds(), status))
        if status != "pending":
            break
        time.sleep(0.2)
    assert statuses and statuses[-1][1] == "expired", str(statuses)
    expired_at = statuses[-1][0]
    assert 4.5 <= expired_at <= 8.5, str(statuses)
    assert all(s == "pending" for _, s in statuses[:-1]), str(statuses)

    # AND the inquiry's execution succeeded with the default as its output
    (asked,) = of_task(children(user, workflow_id), "approve")
    asked = wait_done(user, asked["id"], timeout=15)
    assert asked["status"] == "succeeded" and output(asked) == DEFAULT, str(asked)
    # AND the workflow went on without anyone's input: the next task got the default, the workflow succeeded
    workflow = wait_done(user, workflow_id, timeout=30)
    assert workflow["status"] == "succeeded", str(workflow)
    (after,) = of_task(children(user, workflow_id), "after")
    assert after["parameters"] == {"approved": False, "reason": "timed out"}, str(after)
    # AND nobody answered it, and an answer now is too late
    expired = get_inquiry(user, inquiry["id"])
    assert expired["status"] == "expired" and expired["responded_by"] is None, str(expired)
    late = respond(user, inquiry["id"], {"approved": True})
    assert late.status_code == 409, late.text
    assert get_inquiry(user, inquiry["id"])["status"] == "expired"

    # AND the expiry is in the audit trail: the inquiry's own entry (by the service, the default used), and
    # the completion of its execution, marked as an expiry
    inquiry_trail = items(user, "/api/v1/audit", entity_type="inquiry", entity_id=inquiry["id"])
    expiries = [e for e in inquiry_trail if e["action"] == "inquiry.expired"]
    assert len(expiries) == 1, str(inquiry_trail)
    assert expiries[0]["actor"].startswith("service:") and expiries[0]["detail"]["default_used"] is True, str(expiries)
    assert not [e for e in inquiry_trail if e["action"] == "inquiry.responded"], str(inquiry_trail)
    trail = audit_trail(user, asked["id"])
    ended = [e for e in trail if (e.get("detail") or {}).get("expired") is True]
    assert len(ended) == 1, str(trail)


def test_expired_without_a_default_fails(cloud: Cloud) -> None:
    user = cloud.register("t27-nodefault")
    # WHEN a core.ask with a 2 s TTL and no default is not answered
    execution_id = start(user, "core.ask", {"prompt": "Proceed?", "schema": YES_NO, "ttl": 2})
    inquiry = wait_inquiry(user, execution_id=execution_id)
    execution = wait_done(user, execution_id, timeout=30)
    # THEN the inquiry expired and its execution failed saying so
    assert get_inquiry(user, inquiry["id"])["status"] == "expired"
    assert execution["status"] == "failed", str(execution)
    error: Any = execution["result"]["error"]
    assert error and "inquiry expired" in error, str(execution["result"])
