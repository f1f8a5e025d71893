"""T3.1 Date timer in the past: documented behaviour is "fires once, immediately" (never a silent no-op)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.client import Cloud
from tests.e2e.timer_flow import echo_rule, fires, timer, wait_fires, wait_succeeded

# Runs alone on the cloud (tests/e2e/run.py): its criterion is a timing tolerance (fires within 2 s).
pytestmark = pytest.mark.serial


def test_past_date_fires_once_at_once(cloud: Cloud) -> None:
    # GIVEN a date timer one hour in the past, and a rule using it
    user = cloud.register("t31")
    at = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    trigger = timer(user, "date", {"at": at.isoformat()})
    created = datetime.now(UTC)
    echo_rule(user, trigger["id"])
    # THEN it fires immediately (within 2 s of the rule), once, and says when it was meant to fire
    [fire] = wait_fires(user, trigger["id"], 1, timeout=5)
    assert fire["scheduled"] == at
    assert timedelta(0) <= fire["fired"] - created < timedelta(seconds=2), fire["payload"]
    # AND its execution is created and succeeds
    [execution] = wait_succeeded(user, 1)
    assert execution["result"]["output"] == {"message": fire["payload"]["scheduled_at"]}
    # AND the timer is completed, so a second rule does not fire it again
    assert user.get(f"/api/v1/triggers/{trigger['id']}").json()["state"]["completed"] is True
    echo_rule(user, trigger["id"])
    assert len(fires(user, trigger["id"])) == 1
