"""T3.14 Execution notifications: a WebSocket client receives every status change of an execution, in order.

A real WebSocket client connects to the cloud's gateway with its access
token (`?token=`), subscribes to execution events, and runs an action over
HTTP; it must receive `requested` (the seed's "created"), `scheduled`,
`running` and `succeeded`, each in the seed's format, with the execution
object as `data`, and nothing of another tenant, which is connected at the
same time. Latency is commit→client: from the notification's `timestamp`
(taken in the transaction that commits the change) to the moment the client
read it, on this host's one clock. The bound here is generous (2 cores, tests
in parallel); the real figure is `make bench`'s (bench/notifications.py).
"""

from __future__ import annotations

import statistics
from datetime import datetime
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.e2e.client import Cloud, Listener
from tests.e2e.flow import get_execution
from tests.e2e.workflow_flow import answer, at, start, wait_inquiry, wait_status

# Runs alone on the cloud (tests/e2e/run.py): it bounds notification latency.
pytestmark = pytest.mark.serial

STATUSES = ["requested", "scheduled", "running", "succeeded"]
YES_NO = {"type": "object", "properties": {"approved": {"type": "boolean"}}, "required": ["approved"]}
LATENCY_BOUND_S = 2.0
TIMEOUT_S = 60


def _of(listener: Listener, execution_id: int) -> list[dict[str, Any]]:
    return [m for m in listener.notifications() if m["entity_id"] == execution_id]


def _wait_final(listener: Listener, execution_id: int) -> list[dict[str, Any]]:
    return listener.wait(
        lambda ms: [m for m in ms if m.get("entity_id") == execution_id and m["data"]["status"] == "succeeded"],
        f"execution {execution_id} to be notified succeeded", TIMEOUT_S)


def test_every_status_change_arrives_in_order_with_the_execution(cloud: Cloud) -> None:
    user, other = cloud.register("t314"), cloud.register("t314-other")
    # GIVEN a client of the tenant subscribed to execution events, and one of another tenant hearing everything
    with user.listen() as ws, other.listen() as foreign:
        assert ws.subscribe(["execution.*"]) == {"action": "subscribed", "subscription": {"events": ["execution.*"]}}
        # WHEN the tenant runs an action
        execution_id = start(user, "core.echo", {"message": "notify me"})
        # THEN every status change arrives, in order
        _wait_final(ws, execution_id)
        mine = _of(ws, execution_id)
        assert [m["data"]["status"] for m in mine] == STATUSES, mine
        # AND each is the seed's message: the event, the entity, the execution as it was then, a timestamp
        for message in mine:
            assert set(message) == {"event", "entity_type", "entity_id", "data", "timestamp"}, message
            assert message["event"] == "execution.status_changed" and message["entity_type"] == "execution"
            assert message["data"]["execution_id"] == message["data"]["id"] == execution_id
            assert message["data"]["action_ref"] == "core.echo"
            assert message["timestamp"].endswith("Z") and datetime.fromisoformat(message["timestamp"][:-1])
        running, final = mine[2]["data"], mine[3]["data"]
        assert running["started"] is not None and running["finished"] is None, running
        execution = get_execution(user, execution_id)
        for key in ("id", "action_ref", "status", "parent_execution_id", "enforcement_id", "retry_count",
                    "created", "started", "finished"):
            assert final[key] == execution[key], (key, final, execution)
        # AND each arrived soon after its commit
        latencies = [got - at(m["timestamp"]).timestamp()
                     for got, m in ws.received if m.get("entity_id") == execution_id]
        print(f"commit->client latency: median {statistics.median(latencies) * 1000:.0f} ms, "
              f"max {max(latencies) * 1000:.0f} ms")
        assert max(latencies) < LATENCY_BOUND_S, latencies

        # WHEN the other tenant runs one too (its notifications are the barrier for the check below)
        theirs = start(other, "core.noop")
        _wait_final(foreign, theirs)
        # THEN the other tenant heard only its own execution, and ours heard nothing of theirs
        assert {m["entity_id"] for m in foreign.notifications()} == {theirs}, foreign.notifications()
        assert all(m["entity_id"] != theirs for m in ws.notifications())


def test_entity_subscription_and_unfiltered_clients(cloud: Cloud) -> None:
    user = cloud.register("t314-entity")
    # GIVEN an execution paused on an inquiry, and then two clients: one subscribed to that execution only
    asked = start(user, "core.ask", {"prompt": "Go?", "schema": YES_NO, "ttl": 300})
    wait_status(user, asked, "paused")
    with user.listen() as narrow, user.listen() as everything:
        assert narrow.subscribe(entity_id=asked)["subscription"] == {"entity_id": asked}
        # WHEN another execution runs, and then the paused one is answered and finishes
        noise = start(user, "core.noop")
        _wait_final(everything, noise)
        answer(user, wait_inquiry(user, execution_id=asked)["id"], {"approved": True})
        _wait_final(narrow, asked)
        _wait_final(everything, asked)
        # THEN the narrow client heard only that execution's change; the other heard both, each in order
        assert [(m["entity_id"], m["data"]["status"]) for m in narrow.notifications()] == [(asked, "succeeded")]
        assert [m["data"]["status"] for m in _of(everything, noise)] == STATUSES
        assert [m["data"]["status"] for m in _of(everything, asked)] == ["succeeded"]
        everything.wait(lambda ms: [m for m in ms if m.get("event") == "inquiry.responded"], "inquiry.responded")


def test_a_connection_needs_a_valid_access_token(cloud: Cloud) -> None:
    user = cloud.register("t314-auth")
    assert cloud.ws_url
    for query in ("", "?token=", "?token=not-a-jwt"):
        with pytest.raises(InvalidStatus) as err:
            connect(f"{cloud.ws_url}/{query}", proxy=None)
        assert err.value.response.status_code == 401, (query, err.value.response)
        assert b'"unauthorized"' in (err.value.response.body or b""), err.value.response.body
    # A refresh token is not an access token
    login = cloud.http.post("/auth/login", json={"username": user.username, "password": "e2e-password-123"})
    with pytest.raises(InvalidStatus) as err:
        connect(f"{cloud.ws_url}/?token={login.json()['refresh_token']}", proxy=None)
    assert err.value.response.status_code == 401


def test_bad_messages_answer_the_error_contract_and_keep_the_connection(cloud: Cloud) -> None:
    user = cloud.register("t314-bad")
    with user.listen() as ws:
        # WHEN a client subscribes to an event that does not exist THEN a 400 in the error contract names it
        reply = ws.subscribe(["execution.finished"])
        assert reply["error"]["code"] == "bad_request" and "unknown event" in reply["error"]["message"], reply
        # AND a message that is not JSON is a 400 too
        before = len(ws.received)
        ws.ws.send("not json")
        reply = ws.wait(lambda ms: ms[before:], "a reply to a non-JSON message")[0]
        assert reply["error"]["code"] == "bad_request", reply
        # AND the connection still works, hearing everything
        execution_id = start(user, "core.noop")
        assert [m["data"]["status"] for m in _wait_all(ws, execution_id)] == STATUSES


def _wait_all(listener: Listener, execution_id: int) -> list[dict[str, Any]]:
    _wait_final(listener, execution_id)
    return _of(listener, execution_id)
