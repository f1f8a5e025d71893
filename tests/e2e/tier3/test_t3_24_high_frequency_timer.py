"""T3.24 High-frequency timer: a 1 s timer for 60 s gives 60 ± 2 executions, with no backlog, API responsive."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.client import Cloud
from tests.e2e.flow import FINAL
from tests.e2e.timer_flow import echo_rule, executions, fires, settled, stopped_after, timer

# Runs alone on the cloud (tests/e2e/run.py): its criterion is timer precision under a 1 s interval.
pytestmark = pytest.mark.serial

WINDOW_S = 60
BACKLOG_MAX = 5  # executions not yet finished at any sample: the pipeline keeps up


def test_one_second_timer_for_a_minute(cloud: Cloud) -> None:
    # GIVEN an interval timer of 1 s and a rule running an echo action
    user = cloud.register("t324")
    trigger = timer(user, "interval", {"seconds": 1})
    rule = echo_rule(user, trigger["id"])
    start = datetime.now(UTC)
    backlog: list[int] = []
    health_s: list[float] = []
    with stopped_after(user, rule["id"]):
        # WHEN it runs for 60 s (the seed's window), sampling the backlog and the API's response time
        while (datetime.now(UTC) - start).total_seconds() < WINDOW_S:
            t0 = time.monotonic()
            assert cloud.http.get("/health").status_code == 200
            health_s.append(time.monotonic() - t0)
            backlog.append(sum(1 for e in executions(user) if e["status"] not in FINAL))
            time.sleep(max(0.0, 2.0 - (time.monotonic() - t0)))  # sampling pace, not a wait for the system
    end = start + timedelta(seconds=WINDOW_S)
    # THEN 60 ± 2 fires were scheduled in the window, each on time, none twice
    got = [f for f in fires(user, trigger["id"]) if start <= f["scheduled"] < end]
    assert abs(len(got) - WINDOW_S) <= 2, len(got)
    assert len({f["scheduled"] for f in got}) == len(got)
    errors = sorted(f["error_s"] for f in got)
    assert errors[0] >= 0 and errors[-1] < 0.5, errors[-5:]
    # AND the executions kept up: never more than a few unfinished, all finished and succeeded promptly
    assert max(backlog) <= BACKLOG_MAX, backlog
    done = settled(user, [trigger["id"]], timeout=15)
    assert abs(sum(1 for e in done if start <= _scheduled(e) < end) - WINDOW_S) <= 2
    # AND the API stayed responsive
    assert max(health_s) < 1.0, max(health_s)


def _scheduled(execution: dict[str, object]) -> datetime:
    output = execution["result"]["output"]  # type: ignore[index]
    return datetime.fromisoformat(str(output["message"]).replace("Z", "+00:00"))
