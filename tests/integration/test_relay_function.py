"""The relay Lambda (functions/relay): one scheduled invocation does the minute's outbox, reaper and purge work.

Called as Lambda would call it, with a context whose remaining time really
runs down, against a real PostgreSQL and the session's moto queues.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from chalicelib.aws.clients import client
from chalicelib.aws.queues import queue_url
from chalicelib.db.pool import system_tx
from chalicelib.pipeline.outbox import enqueue
from functions.relay import app as relay
from tests.helpers.api import ApiUser, register
from tests.integration.conftest_aws import eventually

pytestmark = pytest.mark.integration


class FakeContext:
    """Lambda's context: the remaining time counts down from `budget_ms` in real time."""

    def __init__(self, budget_ms: int) -> None:
        self._end = time.monotonic() + budget_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._end - time.monotonic()) * 1000))


def _execution(user: ApiUser, execution_id: int) -> dict[str, Any]:
    status, body = user.get(f"/api/v1/executions/{execution_id}")
    assert status == 200, body
    return dict(body)


def _request(user: ApiUser, action_ref: str) -> int:
    status, body = user.post("/api/v1/executions", {"action_ref": action_ref, "parameters": {}})
    assert status == 201, body
    return int(body["id"])


def _received(marker: str) -> dict[str, Any] | None:
    """The notifications-queue message carrying `marker`, if one is there now (others are left alone)."""
    sqs = client("sqs")
    url = queue_url("notifications")
    for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                       VisibilityTimeout=0).get("Messages", []):
        body = json.loads(message["Body"])
        if body.get("marker") == marker:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            return dict(body)
    return None


def test_one_invocation_sends_the_outbox_reaps_and_purges(api: Any) -> None:
    # GIVEN an outbox row whose send after commit never happened (written over a minute ago)
    marker = uuid.uuid4().hex
    with system_tx() as cur:
        pending = enqueue(cur, "notifications", {"marker": marker})
        cur.execute("UPDATE attune.outbox SET created = now() - interval '1 min' WHERE id = %s", (pending.id,))
    # AND a running execution whose worker stopped beating, beside one whose worker is alive
    user = register(api, "relay")
    stale, alive = _request(user, "core.noop"), _request(user, "core.noop")
    with system_tx() as cur:
        cur.execute(
            "UPDATE attune.execution SET status = 'running', worker_id = 'gone:1:0',"
            " started = now() - interval '1 min',"
            " heartbeat_at = CASE WHEN id = %s THEN now() - interval '10 min' ELSE now() END WHERE id = ANY(%s)",
            (stale, [stale, alive]),
        )
    # AND a datastore item that expired, beside one that has not
    for key, ttl in (("old", 60), ("young", 3600)):
        status, body = user.post("/api/v1/datastore", {"key": key, "value": key, "ttl": ttl})
        assert status == 201, body
    with system_tx() as cur:
        cur.execute("UPDATE attune.datastore_item SET expires_at = now() - interval '1 s' WHERE key = 'old'")
    # WHEN the schedule invokes the relay with a little more Lambda time than its safety margin
    started = time.monotonic()
    totals = relay.handler({"scheduled_time": "2026-01-01T00:00:00Z"},
                           FakeContext(relay.STOP_MARGIN_MS + 1500))
    elapsed = time.monotonic() - started
    # THEN it stopped on the Lambda's clock, not the minute's, after doing every duty
    assert elapsed < 5, f"the relay ran {elapsed:.1f}s with 1.5s of usable Lambda time"
    assert totals["sent"] >= 1 and totals["reaped"] == 1 and totals["purged"] == 1, totals
    # AND the lost message reached its queue and is marked sent
    assert eventually(lambda: _received(marker), timeout=10, message="the relayed message")["outbox_id"] == pending.id
    with system_tx() as cur:
        cur.execute("SELECT sent_at FROM attune.outbox WHERE id = %s", (pending.id,))
        row = cur.fetchone()
    assert row is not None and row["sent_at"] is not None
    # AND only the stale execution failed, as the reaper fails it
    reaped = _execution(user, stale)
    assert reaped["status"] == "failed" and reaped["result"]["error"].startswith("worker lost"), reaped
    assert _execution(user, alive)["status"] == "running"
    # AND only the expired item was purged
    with system_tx() as cur:
        cur.execute("SELECT key FROM attune.datastore_item WHERE tenant_id = %s ORDER BY key", (user.tenant_id,))
        assert [r["key"] for r in cur.fetchall()] == ["young"]


class _Clock:
    """A fake monotonic clock that `sleep` advances: the minute's loop without waiting a minute."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


class _FakeClockContext:
    def __init__(self, clock: _Clock, budget_ms: int) -> None:
        self._clock, self._end = clock, clock.now + budget_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return int((self._end - self._clock.now) * 1000)


def _counting_duties(calls: dict[str, list[float]], clock: _Clock) -> list[relay.Duty]:
    def duty(name: str) -> Any:
        def run() -> int:
            calls[name].append(clock.now)
            if name == "broken":
                raise RuntimeError("a bug in one duty")
            return 1

        return run

    return [relay.Duty(name, every, duty(name)) for name, every in (("sweep", 1.0), ("reap", 5.0),
                                                                      ("broken", 1.0), ("purge", 60.0))]


def test_the_loop_covers_the_minute_on_each_duty_period() -> None:
    # GIVEN a Lambda with its full 90 s and duties on 1 s, 5 s and 60 s periods, one of them failing
    clock = _Clock()
    calls: dict[str, list[float]] = {"sweep": [], "reap": [], "broken": [], "purge": []}
    # WHEN one invocation runs
    totals = relay.run_minute(_FakeClockContext(clock, 90_000), _counting_duties(calls, clock),
                              clock=clock, sleep=clock.sleep)
    # THEN each duty ran on its period for exactly the minute, the failing one did not stop the others
    assert len(calls["sweep"]) == 60 and len(calls["reap"]) == 12 and len(calls["purge"]) == 1
    assert len(calls["broken"]) == 60 and totals["broken"] == 0
    assert calls["sweep"][-1] - calls["sweep"][0] == 59.0
    assert totals["sweep"] == 60 and totals["reap"] == 12


def test_the_loop_stops_before_lambda_runs_out_of_time() -> None:
    # GIVEN a Lambda with only 20 s left
    clock = _Clock()
    calls: dict[str, list[float]] = {"sweep": [], "reap": [], "broken": [], "purge": []}
    relay.run_minute(_FakeClockContext(clock, 20_000), _counting_duties(calls, clock),
                     clock=clock, sleep=clock.sleep)
    # THEN it ends no later than its safety margin before the Lambda would be killed
    assert 0 < calls["sweep"][-1] - 1000.0 <= 20 - relay.STOP_MARGIN_MS / 1000
    assert clock.now - 1000.0 <= 20 - relay.STOP_MARGIN_MS / 1000
