"""T3.3 Multiple concurrent timers: 3 s, 5 s and 7 s timers run independently, without drift, over 21 s."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise

import pytest

from tests.e2e.client import Cloud
from tests.e2e.timer_flow import echo_rule, fires, settled, stopped_after, timer, wait_fires

# Runs alone on the cloud (tests/e2e/run.py): its criterion is a timing tolerance (0.5 s).
pytestmark = pytest.mark.serial

TOLERANCE_S = 0.5


def test_three_timers_fire_on_their_own_schedules(cloud: Cloud) -> None:
    # GIVEN three interval timers (created 7 s first, so none starts after the 3 s one) and a rule each
    user = cloud.register("t33")
    by_period = {period: timer(user, "interval", {"seconds": period}) for period in (7, 5, 3)}
    rules = [echo_rule(user, t["id"]) for t in by_period.values()]
    with stopped_after(user, *(r["id"] for r in rules)):
        # WHEN 21 s (the LCM window) have passed: the 3 s timer's 7th fire
        wait_fires(user, by_period[3]["id"], 7, timeout=30)
        counts = {period: len(fires(user, t["id"])) for period, t in by_period.items()}
    # THEN A fired 7 times, B 4 (or 5, at the window's edge), C 3
    assert counts[3] == 7 and counts[5] in (4, 5) and counts[7] == 3, counts
    # AND each kept its own period exactly (no drift) and fired on time
    for period, trigger in by_period.items():
        got = fires(user, trigger["id"])
        assert all(b["scheduled"] - a["scheduled"] == timedelta(seconds=period) for a, b in pairwise(got)), period
        assert all(0 <= f["error_s"] <= TOLERANCE_S for f in got), [f["payload"] for f in got]
    # AND every fire ran its rule's action once, successfully
    settled(user, [t["id"] for t in by_period.values()])
