"""EventBridge Scheduler expressions: parsing as strictly as AWS, and when occurrences are due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from chalicelib.local import schedule_expressions as se


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


ANCHOR = utc(2026, 1, 1)
WINDOW = se.Window(anchor=ANCHOR)


@pytest.mark.parametrize(("text", "seconds"), [
    ("rate(1 minute)", 60),
    ("rate(5 minutes)", 300),
    ("rate(1 hour)", 3600),
    ("rate(2 hours)", 7200),
    ("rate(1 day)", 86400),
    ("rate(7 days)", 604800),
])
def test_rates(text: str, seconds: int) -> None:
    assert se.parse(text) == se.Rate(seconds=seconds)


@pytest.mark.parametrize("text", [
    "rate(1 minutes)", "rate(5 minute)", "rate(0 minutes)", "rate(1 second)", "rate(-1 days)",
    "rate(5)", "every 5 minutes", "",
])
def test_rates_aws_rejects(text: str) -> None:
    with pytest.raises(se.InvalidExpression):
        se.parse(text)


@pytest.mark.parametrize(("aws", "translated"), [
    ("0 10 * * ? *", "0 10 * * * 0 *"),
    ("15 10 ? * 6L 2027", "15 10 * * L5 0 2027"),
    ("0 18 ? * MON-FRI *", "0 18 * * MON-FRI 0 *"),
    ("0 12 ? * 2-6 *", "0 12 * * 1-5 0 *"),
    ("0 8 ? * 1,7 *", "0 8 * * 0,6 0 *"),
    ("0 9 ? * 2#1 *", "0 9 * * 1#1 0 *"),
    ("0/15 * * * ? *", "0/15 * * * * 0 *"),
    ("0 0 L * ? *", "0 0 L * * 0 *"),
])
def test_cron_translates_aws_fields(aws: str, translated: str) -> None:
    assert se.parse(f"cron({aws})") == se.Cron(aws=aws, croniter_expression=translated)


@pytest.mark.parametrize("text", [
    "cron(0 10 * * *)",          # five fields: Unix cron, not AWS
    "cron(0 10 * * * *)",        # '?' in neither day field
    "cron(0 10 ? * ? *)",        # '?' in both
    "cron(0 10 ? * 8 *)",        # day of week out of 1-7
    "cron(0 10 ? * 0 *)",
    "cron(0 25 * * ? *)",        # hour 25
    "cron(0 10 ? * FUNDAY *)",
])
def test_cron_aws_rejects(text: str) -> None:
    with pytest.raises(se.InvalidExpression):
        se.parse(text)


def test_at_is_a_wall_clock_time() -> None:
    assert se.parse("at(2026-03-01T12:30:00)") == se.At(local_time=datetime(2026, 3, 1, 12, 30))
    with pytest.raises(se.InvalidExpression):
        se.parse("at(2026-03-01 12:30)")


def test_a_rate_starts_at_its_anchor_and_repeats() -> None:
    rate = se.parse("rate(5 minutes)")
    before = ANCHOR - timedelta(milliseconds=1)
    assert se.latest_due(rate, WINDOW, before, ANCHOR) == ANCHOR
    assert se.latest_due(rate, WINDOW, ANCHOR, ANCHOR + timedelta(minutes=4)) is None
    assert se.latest_due(rate, WINDOW, ANCHOR, ANCHOR + timedelta(minutes=5)) == utc(2026, 1, 1, 0, 5)
    assert se.next_after(rate, WINDOW, ANCHOR) == utc(2026, 1, 1, 0, 5)
    assert se.next_after(rate, WINDOW, before) == ANCHOR


def test_missed_occurrences_coalesce_into_the_latest() -> None:
    rate = se.parse("rate(1 minute)")
    due = se.latest_due(rate, WINDOW, ANCHOR, ANCHOR + timedelta(minutes=10, seconds=30))
    assert due == utc(2026, 1, 1, 0, 10)


def test_an_occurrence_is_due_once() -> None:
    cron = se.parse("cron(0/15 * * * ? *)")
    now = utc(2026, 11, 25, 9, 0)
    first = se.latest_due(cron, WINDOW, now - timedelta(minutes=1), now)
    assert first == now
    assert se.latest_due(cron, WINDOW, first, now) is None
    assert se.latest_due(cron, WINDOW, first, now + timedelta(minutes=14)) is None
    assert se.latest_due(cron, WINDOW, first, now + timedelta(minutes=15)) == utc(2026, 11, 25, 9, 15)


def test_cron_runs_in_the_schedule_time_zone() -> None:
    # 09:00 in New York is 14:00 UTC in winter and 13:00 UTC in summer
    cron = se.parse("cron(0 9 * * ? *)")
    window = se.Window(anchor=ANCHOR, tz=ZoneInfo("America/New_York"))
    assert se.next_after(cron, window, utc(2026, 1, 10, 0, 0)) == utc(2026, 1, 10, 14, 0)
    assert se.next_after(cron, window, utc(2026, 7, 10, 0, 0)) == utc(2026, 7, 10, 13, 0)


def test_aws_day_numbers_count_from_sunday() -> None:
    # AWS 2 is Monday; 2026-11-29 is a Sunday
    cron = se.parse("cron(0 12 ? * 2 *)")
    assert se.next_after(cron, WINDOW, utc(2026, 11, 29, 0, 0)) == utc(2026, 11, 30, 12, 0)


def test_the_year_field_limits_occurrences() -> None:
    cron = se.parse("cron(0 12 1 1 ? 2028)")
    assert se.next_after(cron, WINDOW, utc(2026, 6, 1)) == utc(2028, 1, 1, 12, 0)


def test_start_and_end_dates_bound_a_recurring_schedule() -> None:
    rate = se.parse("rate(1 hour)")
    window = se.Window(anchor=ANCHOR, start=utc(2026, 1, 1, 5), end=utc(2026, 1, 1, 8))
    assert se.next_after(rate, window, ANCHOR) == utc(2026, 1, 1, 5)
    assert se.latest_due(rate, window, ANCHOR, utc(2026, 1, 1, 4, 30)) is None
    assert se.latest_due(rate, window, utc(2026, 1, 1, 7), utc(2026, 1, 2)) == utc(2026, 1, 1, 8)
    assert se.latest_due(rate, window, utc(2026, 1, 1, 8), utc(2026, 1, 2)) is None
    assert se.next_after(rate, window, utc(2026, 1, 1, 8)) is None


def test_at_is_due_once_in_its_time_zone() -> None:
    at = se.parse("at(2026-03-01T12:00:00)")
    window = se.Window(anchor=ANCHOR, tz=ZoneInfo("Europe/Paris"))
    when = utc(2026, 3, 1, 11, 0)  # 12:00 in Paris (UTC+1 in March)
    assert se.latest_due(at, window, ANCHOR, when - timedelta(seconds=1)) is None
    assert se.latest_due(at, window, ANCHOR, when) == when
    assert se.latest_due(at, window, when, when + timedelta(days=1)) is None


def test_unknown_time_zones_are_rejected() -> None:
    assert se.zone(None) == ZoneInfo("UTC")
    with pytest.raises(se.InvalidExpression):
        se.zone("Mars/Olympus_Mons")


def test_scheduled_time_format() -> None:
    assert se.format_time(datetime(2026, 3, 1, 12, 0, 5, 999999, tzinfo=UTC)) == "2026-03-01T12:00:05Z"
