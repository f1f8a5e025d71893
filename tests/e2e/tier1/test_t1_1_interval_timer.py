"""T1.1 Interval timer automation: a 5 s timer fires every 5 s (±500 ms); each fire → enforcement → execution."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise

import pytest

from tests.e2e.client import Cloud
from tests.e2e.flow import enforcements
from tests.e2e.timer_flow import echo_rule, stopped_after, timer, wait_fires, wait_succeeded

# Runs alone on the cloud (tests/e2e/run.py): its criterion is a timing tolerance (0.5 s).
pytestmark = pytest.mark.serial

TOLERANCE_S = 0.5


def test_interval_timer_fires_every_five_seconds(cloud: Cloud) -> None:
    # GIVEN an interval timer of 5 s and a rule linking it to an echo action
    user = cloud.register("t11")
    trigger = timer(user, "interval", {"seconds": 5})
    rule = echo_rule(user, trigger["id"])
    with stopped_after(user, rule["id"]):
        # WHEN three fires happened (~15 s)
        fires = wait_fires(user, trigger["id"], 3, timeout=25)[:3]
        # THEN each fired within ±500 ms of its schedule, and the schedule is every 5 s
        for fire in fires:
            assert 0 <= fire["error_s"] <= TOLERANCE_S, fire["payload"]
        for a, b in pairwise(fires):
            assert b["scheduled"] - a["scheduled"] == timedelta(seconds=5)
            assert abs((b["fired"] - a["fired"]).total_seconds() - 5) <= TOLERANCE_S
        # AND each fire made one enforcement, and each enforcement one execution that succeeded with output
        event_ids = {f["id"] for f in fires}
        done = wait_succeeded(user, 3)
        made = {e["event_id"]: e for e in enforcements(user, rule_id=rule["id"])}
        assert event_ids <= set(made)
        by_enforcement = {e["enforcement_id"]: e for e in done}
        for fire in fires:
            execution = by_enforcement[made[fire["id"]]["id"]]
            assert execution["result"]["output"] == {"message": fire["payload"]["scheduled_at"]}
