"""T1.3 Cron timer: seconds-precision cron fires at exactly the second marks it names, and nowhere else.

The seed's three examples run side by side in one observation window that
reaches 13 s past the next minute boundary (at most ~74 s): `0,3,6,12 * * *
* *` must show 0, 3, 6 and 12 of that minute, `0 * * * * *` its top, and
`*/5 * * * * *` every fifth second (evaluated in Asia/Kathmandu, UTC+05:45,
whose quarter-hour offset must not shift the seconds).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.client import Cloud
from tests.e2e.timer_flow import echo_rule, fires, observe, parse, settled, stopped_after, timer

# Runs alone on the cloud (tests/e2e/run.py): its criterion is a timing tolerance (0.5 s).
pytestmark = pytest.mark.serial

TOLERANCE_S = 0.5
EXAMPLES = {
    "specific": ("0,3,6,12 * * * * *", "UTC", {0, 3, 6, 12}),
    "every5": ("*/5 * * * * *", "Asia/Kathmandu", set(range(0, 60, 5))),
    "minute": ("0 * * * * *", "UTC", {0}),
}


def test_cron_timers_fire_at_their_second_marks(cloud: Cloud) -> None:
    # GIVEN the seed's three cron timers, each with a rule echoing the fire's scheduled time
    user = cloud.register("t13")
    triggers = {
        name: timer(user, "cron", {"expression": expr, "timezone": zone}) for name, (expr, zone, _) in EXAMPLES.items()
    }
    rules = {name: echo_rule(user, t["id"]) for name, t in triggers.items()}
    live_from = max(parse(r["created"]) for r in rules.values()) + timedelta(seconds=1)
    boundary = (live_from + timedelta(minutes=1)).replace(second=0, microsecond=0)
    until = boundary + timedelta(seconds=13)
    with stopped_after(user, *(r["id"] for r in rules.values())):
        # WHEN the clock passes the next minute boundary and 13 s more (the seed's observation window)
        observe((until - datetime.now(UTC)).total_seconds() + 1)
    # THEN each fire ran the action once, successfully, with the fire's scheduled time as output
    settled(user, [t["id"] for t in triggers.values()])
    seen = {name: fires(user, t["id"]) for name, t in triggers.items()}
    for name, (expr, _, marks) in EXAMPLES.items():
        got = [f for f in seen[name] if f["scheduled"] < until]
        # AND every fire is at one of the expression's second marks, on time (±500 ms)
        for fire in seen[name]:
            assert fire["scheduled"].second in marks and fire["scheduled"].microsecond == 0, (expr, fire["payload"])
            assert 0 <= fire["error_s"] <= TOLERANCE_S, (expr, fire["payload"])
        # AND every mark in the window fired, once
        whole = live_from.replace(microsecond=0)
        expected = [whole + timedelta(seconds=s) for s in range(1, int((until - whole).total_seconds()) + 1)]
        expected = [t for t in expected if live_from <= t < until and t.second in marks]
        assert [f["scheduled"] for f in got if f["scheduled"] >= live_from] == expected, expr
    # AND the boundary minute shows 0, 3, 6, 12 for the specific-seconds timer, and its top for the minute timer
    assert {f["scheduled"] for f in seen["specific"]} >= {boundary + timedelta(seconds=s) for s in (0, 3, 6, 12)}
    assert boundary in {f["scheduled"] for f in seen["minute"]}


def test_bad_cron_and_zone_are_400(cloud: Cloud) -> None:
    user = cloud.register("t13-bad")
    for params in (
        {"expression": "61 * * * * *", "timezone": "UTC"},
        {"expression": "* * * *", "timezone": "UTC"},
        {"expression": "*/5 * * * * *", "timezone": "Mars/Olympus"},
    ):
        resp = user.post("/api/v1/triggers", {"type": "cron", "parameters": params})
        assert resp.status_code == 400, (params, resp.text)
        assert resp.json()["error"]["code"]
