"""T3.2 Timer cancellation: disabling the rule stops the fires; re-enabling resumes from now, without a burst."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.client import Cloud
from tests.e2e.flow import FINAL
from tests.e2e.timer_flow import echo_rule, executions, fires, observe, stopped_after, timer, wait_fires, wait_succeeded

# Runs alone on the cloud (tests/e2e/run.py): its criterion is a timing tolerance.
pytestmark = pytest.mark.serial


def test_disabled_rule_stops_and_reenabled_rule_resumes(cloud: Cloud) -> None:
    # GIVEN an interval timer of 5 s with an enabled rule, after two executions
    user = cloud.register("t32")
    trigger = timer(user, "interval", {"seconds": 5})
    rule = echo_rule(user, trigger["id"])
    with stopped_after(user, rule["id"]):
        wait_fires(user, trigger["id"], 2, timeout=15)
        wait_succeeded(user, 2)
        # WHEN the rule is disabled
        resp = user.patch(f"/api/v1/rules/{rule['id']}", {"enabled": False})
        assert resp.status_code == 200 and resp.json()["enabled"] is False
        disabled_at = datetime.now(UTC)
        fired_before = len(fires(user, trigger["id"]))
        # THEN for the next 15 s (the seed's window) nothing fires, and in-flight executions finish normally
        observe(15)
        assert len(fires(user, trigger["id"])) == fired_before
        finished = executions(user)
        assert len(finished) == fired_before and all(e["status"] in FINAL for e in finished)
        assert all(e["status"] == "succeeded" for e in finished)
        # WHEN the rule is enabled again
        assert user.patch(f"/api/v1/rules/{rule['id']}", {"enabled": True}).status_code == 200
        enabled_at = datetime.now(UTC)
        # THEN it resumes within one interval, with no burst of the fires missed while disabled
        resumed = wait_fires(user, trigger["id"], fired_before + 1, timeout=7)
        new = resumed[fired_before:]
        assert all(f["scheduled"] >= enabled_at - timedelta(milliseconds=500) for f in new), new
        assert new[0]["scheduled"] - enabled_at <= timedelta(seconds=5)
        assert not [f for f in resumed if disabled_at < f["scheduled"] < enabled_at - timedelta(milliseconds=500)]
        wait_succeeded(user, fired_before + 1)
