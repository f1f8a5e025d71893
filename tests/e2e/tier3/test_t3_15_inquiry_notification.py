"""T3.15 Inquiry notifications: `inquiry.created` when an execution pauses to ask, `inquiry.responded` once answered.

A WebSocket client subscribed to inquiry events runs `core.ask` (the
standalone approval action, docs/workflows.md): the moment the execution
pauses, `inquiry.created` arrives with the inquiry (prompt, schema, roles,
timeout) as `data`, so a UI can show the approval request; after `POST
/api/v1/inquiries/{id}/respond`, `inquiry.responded` arrives with the
answer and who gave it. Nothing else reaches the subscribed client, and
nothing reaches another tenant's.
"""

from __future__ import annotations

from typing import Any

from tests.e2e.client import Cloud
from tests.e2e.workflow_flow import at, get_inquiry, respond, start, wait_done, wait_inquiry

APPROVAL = {"type": "object", "properties": {"approved": {"type": "boolean"}, "ticket": {"type": "string"}},
            "required": ["approved"]}
TIMEOUT_S = 60


def _event(name: str, inquiry_id: int | None = None, execution_id: int | None = None) -> Any:
    def probe(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [m for m in messages if m.get("event") == name
                and (inquiry_id is None or m["entity_id"] == inquiry_id)
                and (execution_id is None or m["data"].get("execution_id") == execution_id)]
    return probe


def test_inquiry_created_and_responded_are_notified(cloud: Cloud) -> None:
    user, other = cloud.register("t315"), cloud.register("t315-other")
    # GIVEN a client subscribed to inquiry events, and another tenant's client hearing everything
    with user.listen() as ws, other.listen() as foreign:
        assert ws.subscribe(["inquiry.*"])["subscription"] == {"events": ["inquiry.*"]}
        # WHEN an execution asks for approval
        execution_id = start(user, "core.ask", {"prompt": "Deploy build 42?", "schema": APPROVAL, "ttl": 300,
                                                "roles": ["admin"]})
        # THEN inquiry.created arrives with the inquiry's details
        (created,) = ws.wait(_event("inquiry.created", execution_id=execution_id), "inquiry.created", TIMEOUT_S)
        assert set(created) == {"event", "entity_type", "entity_id", "data", "timestamp"}, created
        assert created["entity_type"] == "inquiry"
        inquiry_id = created["entity_id"]
        data = created["data"]
        assert data["id"] == inquiry_id and data["status"] == "pending", data
        assert data["prompt"] == "Deploy build 42?" and data["schema"] == APPROVAL and data["roles"] == ["admin"]
        # AND it is the inquiry the API shows
        inquiry = wait_inquiry(user, execution_id=execution_id)
        assert inquiry["id"] == inquiry_id
        assert data["timeout_at"] == inquiry["timeout_at"] and data["created"] == inquiry["created"], (data, inquiry)

        # WHEN someone answers it over the API
        resp = respond(user, inquiry_id, {"approved": True, "ticket": "OPS-7"})
        assert resp.status_code == 200, resp.text
        # THEN inquiry.responded arrives with the answer and who gave it
        (responded,) = ws.wait(_event("inquiry.responded", inquiry_id), "inquiry.responded", TIMEOUT_S)
        assert responded["data"]["status"] == "responded", responded
        assert responded["data"]["response"] == {"approved": True, "ticket": "OPS-7"}
        assert responded["data"]["responded_by_username"] == user.username
        assert get_inquiry(user, inquiry_id)["responded_at"] is not None
        assert at(responded["timestamp"]) >= at(created["timestamp"])
        # AND the subscribed client heard inquiry events only, in order
        assert [m["event"] for m in ws.notifications()] == ["inquiry.created", "inquiry.responded"]
        assert wait_done(user, execution_id)["status"] == "succeeded"

        # WHEN the other tenant asks and answers its own (its notifications are the barrier)
        theirs = start(other, "core.ask", {"prompt": "Theirs?", "schema": APPROVAL, "ttl": 300})
        (their_created,) = foreign.wait(_event("inquiry.created", execution_id=theirs), "their inquiry", TIMEOUT_S)
        # THEN it heard nothing of ours, and we nothing of theirs
        heard = {(m["entity_type"], m["entity_id"]) for m in foreign.notifications()}
        assert ("inquiry", inquiry_id) not in heard and ("execution", execution_id) not in heard, heard
        assert their_created["entity_id"] not in {m["entity_id"] for m in ws.notifications()}
