"""Helpers for the timer e2e tests: timers, their events in fire order, and fire-time checks."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from tests.e2e.client import User
from tests.e2e.flow import FINAL, create_rule, items, poll

ECHO = "core.echo"
FIRE_PARAMETERS = {"message": "{{ trigger.data.scheduled_at }}"}


def parse(stamp: str) -> datetime:
    """An ISO-8601 UTC timestamp from a timer payload."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def timer(user: User, kind: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """A new timer trigger (it fires once an enabled rule uses it)."""
    resp = user.post("/api/v1/triggers", {"type": kind, "parameters": parameters})
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def echo_rule(user: User, trigger_id: int) -> dict[str, Any]:
    """An enabled rule that echoes each fire's scheduled time (so the output shows which fire ran)."""
    return create_rule(user, trigger_id, ECHO, parameters=FIRE_PARAMETERS)


def fires(user: User, trigger_id: int) -> list[dict[str, Any]]:
    """A timer's events, oldest fire first, each with parsed `scheduled`, `fired` and `error_s`."""
    out = []
    for event in items(user, "/api/v1/events", trigger_id=trigger_id):
        payload = event["payload"]
        assert set(payload) == {"scheduled_at", "fired_at"}, payload
        scheduled, fired = parse(payload["scheduled_at"]), parse(payload["fired_at"])
        out.append({**event, "scheduled": scheduled, "fired": fired, "error_s": (fired - scheduled).total_seconds()})
    return sorted(out, key=lambda e: e["scheduled"])


def wait_fires(user: User, trigger_id: int, count: int, timeout: float) -> list[dict[str, Any]]:
    """Poll until the timer fired at least `count` times."""

    def probe() -> list[dict[str, Any]] | None:
        got = fires(user, trigger_id)
        return got if len(got) >= count else None

    return poll(probe, f"{count} fires of timer {trigger_id}", user.cloud, timeout)


def executions(user: User, action_ref: str = ECHO) -> list[dict[str, Any]]:
    """The tenant's executions of an action (each test has a tenant of its own)."""
    return items(user, "/api/v1/executions", action_ref=action_ref)


def wait_succeeded(user: User, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Poll until `count` executions exist and all of them reached a final status; they must have succeeded."""

    def probe() -> list[dict[str, Any]] | None:
        got = executions(user)
        done = [e for e in got if e["status"] in {"succeeded", "failed", "canceled", "succeeded_with_errors"}]
        return got if len(got) >= count and len(done) == len(got) else None

    got = poll(probe, f"{count} finished executions", user.cloud, timeout)
    assert all(e["status"] == "succeeded" for e in got), [(e["id"], e["status"], e["result"]) for e in got]
    return got


def observe(seconds: float) -> None:
    """Let time pass for an observation window the seed scenario itself defines (not a wait for the system)."""
    time.sleep(seconds)


@contextmanager
def stopped_after(user: User, *rule_ids: int) -> Iterator[None]:
    """Disable the rules when the test ends, so their timers stop loading the shared cloud.

    (Deleting the trigger would also delete its events, which the test still reads.)
    """
    try:
        yield
    finally:
        for rule_id in rule_ids:
            user.patch(f"/api/v1/rules/{rule_id}", {"enabled": False})


# A timer's last fires may come while the test disables its rule (stopped_after): an event the rules
# role reads after the rule is off starts nothing, as it should. Only those may have no execution.
TRAILING_FIRES_UNRUN = 2


def settled(user: User, trigger_ids: list[int], timeout: float = 60.0) -> list[dict[str, Any]]:
    """Once every fire's execution finished: the executions; each fire ran exactly one, which succeeded.

    Except a timer's last fire or two, which may have no execution at all if
    they came as the rule was being disabled; a fire that ran twice, a failed
    run, or an earlier fire without a run still fails.
    """

    def probe() -> list[dict[str, Any]] | None:
        per_trigger = [[f["payload"]["scheduled_at"] for f in fires(user, t)] for t in trigger_ids]
        done = executions(user)
        if any(e["status"] != "succeeded" for e in done):
            return None if any(e["status"] not in FINAL for e in done) else done_badly(done)
        ran = Counter(e["result"]["output"]["message"] for e in done)
        fired = Counter(at for times in per_trigger for at in times)
        if ran - fired:  # a run of no fire, or one fire run twice
            return None
        unrun = fired - ran
        trailing = Counter(at for times in per_trigger for at in times[-TRAILING_FIRES_UNRUN:])
        return done if not unrun - trailing else None

    def done_badly(done: list[dict[str, Any]]) -> None:
        raise AssertionError(f"a timer's execution did not succeed: {[e for e in done if e['status'] != 'succeeded']}")

    return poll(probe, "one successful execution per fire", user.cloud, timeout)
