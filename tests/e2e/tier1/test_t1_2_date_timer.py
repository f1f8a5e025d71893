"""T1.2 Date timer (one shot): fires once at its time (±1 s), exactly one execution, then completed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.e2e.client import Cloud
from tests.e2e.flow import enforcements
from tests.e2e.timer_flow import echo_rule, executions, fires, observe, timer, wait_fires, wait_succeeded

# Runs alone on the cloud (tests/e2e/run.py): its criterion is a timing tolerance (1 s).
pytestmark = pytest.mark.serial

PLUS_TWO = timezone(timedelta(hours=2))  # the date names its own offset, and the timer must honour it


def test_date_timer_fires_once(cloud: Cloud) -> None:
    # GIVEN a date timer 5 s from now (with an offset other than UTC) and a rule
    user = cloud.register("t12")
    at = (datetime.now(UTC) + timedelta(seconds=5)).astimezone(PLUS_TWO).replace(microsecond=0)
    trigger = timer(user, "date", {"at": at.isoformat()})
    rule = echo_rule(user, trigger["id"])
    # WHEN its time comes (the seed waits 7 s)
    [fire] = wait_fires(user, trigger["id"], 1, timeout=7)
    # THEN it fired once, at the scheduled time ±1 s
    assert fire["scheduled"] == at
    assert abs((fire["fired"] - at).total_seconds()) <= 1.0, fire["payload"]
    # AND exactly one enforcement and one (successful) execution came of it
    wait_succeeded(user, 1)
    assert len(enforcements(user, rule_id=rule["id"])) == 1
    # AND the timer is marked completed
    state = user.get(f"/api/v1/triggers/{trigger['id']}").json()["state"]
    assert state["completed"] is True
    # WHEN 10 more seconds pass (the seed's observation window) THEN nothing fires again
    observe(10)
    assert len(fires(user, trigger["id"])) == 1
    assert len(executions(user)) == 1
    assert len(enforcements(user, rule_id=rule["id"])) == 1
