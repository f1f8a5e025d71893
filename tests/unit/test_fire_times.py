"""Fire-time maths: interval grids, dates, and cron on the wall clock across DST changes and month ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from chalicelib.core.fire_times import cron_due, date_due, due_times, interval_due, segments

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def wall(times: list[datetime], tz: ZoneInfo) -> list[str]:
    return [t.astimezone(tz).strftime("%m-%d %H:%M:%S%z") for t in times]


# ------------------------------------------------------------------ interval --
def test_interval_is_a_grid_from_the_anchor() -> None:
    anchor = utc(2026, 1, 1, 12, 0, 0)
    got = interval_due(5, anchor, anchor, anchor + timedelta(seconds=16))
    assert got == [anchor + timedelta(seconds=s) for s in (5, 10, 15)]


def test_interval_never_fires_at_its_anchor_and_window_end_is_exclusive() -> None:
    anchor = utc(2026, 1, 1, 12, 0, 0)
    assert interval_due(5, anchor, anchor - timedelta(hours=1), anchor + timedelta(seconds=5)) == []


def test_interval_resumes_on_the_grid_without_a_burst() -> None:
    # GIVEN a 5 s timer anchored an hour ago, disabled for that hour
    anchor = utc(2026, 1, 1, 12, 0, 0, 250000)
    now = anchor + timedelta(hours=1, seconds=2)
    # WHEN it is asked for fires from now
    got = interval_due(5, anchor, now, now + timedelta(seconds=11))
    # THEN it resumes at the next grid point, keeping its phase (no catch-up, no drift)
    assert got == [anchor + timedelta(hours=1, seconds=5), anchor + timedelta(hours=1, seconds=10)]


def test_interval_keeps_microsecond_phase_over_a_long_time() -> None:
    anchor = utc(2026, 1, 1, 0, 0, 0, 123456)
    start = anchor + timedelta(days=300)
    got = interval_due(7, anchor, start, start + timedelta(seconds=7))
    assert len(got) == 1 and got[0].microsecond == 123456 and (got[0] - anchor).total_seconds() % 7 == 0


def test_interval_rejects_zero() -> None:
    with pytest.raises(ValueError):
        interval_due(0, utc(2026, 1, 1), utc(2026, 1, 1), utc(2026, 1, 2))


# ---------------------------------------------------------------------- date --
def test_date_in_the_future_is_due_only_once_the_window_reaches_it() -> None:
    at = utc(2026, 5, 1, 10, 0, 0)
    assert date_due(at, at) == []
    assert date_due(at, at + timedelta(microseconds=1)) == [at]


def test_date_in_the_past_is_still_due() -> None:
    # a date that never fired fires once, at once: the window's start does not hide it
    at = utc(2026, 5, 1, 10, 0, 0)
    now = at + timedelta(hours=1)
    assert due_times(
        "date", {"at": "2026-05-01T12:00:00+02:00"}, anchor=now, start=now, end=now + timedelta(minutes=1)
    ) == [at]


# ---------------------------------------------------------------------- cron --
def test_six_fields_put_seconds_first() -> None:
    start = utc(2026, 1, 1, 12, 0, 0)
    got = cron_due("0,3,6,12 * * * * *", "UTC", start, start + timedelta(minutes=2))
    assert [(t.minute, t.second) for t in got] == [(0, 0), (0, 3), (0, 6), (0, 12), (1, 0), (1, 3), (1, 6), (1, 12)]


def test_every_five_seconds_and_top_of_minute() -> None:
    start = utc(2026, 1, 1, 12, 0, 1)
    assert len(cron_due("*/5 * * * * *", "UTC", start, start + timedelta(minutes=1))) == 12
    assert cron_due("0 * * * * *", "UTC", start, start + timedelta(minutes=2)) == [
        utc(2026, 1, 1, 12, 1),
        utc(2026, 1, 1, 12, 2),
    ]


def test_five_fields_are_minutes() -> None:
    start = utc(2026, 1, 1, 12, 0, 30)
    assert cron_due("*/15 * * * *", "UTC", start, start + timedelta(hours=1)) == [
        utc(2026, 1, 1, 12, m) for m in (15, 30, 45)
    ] + [utc(2026, 1, 1, 13, 0)]


def test_window_start_is_inclusive_to_the_microsecond() -> None:
    at = utc(2026, 1, 1, 12, 0, 3)
    assert cron_due("3 * * * * *", "UTC", at, at + timedelta(seconds=1)) == [at]
    assert cron_due("3 * * * * *", "UTC", at + timedelta(microseconds=1), at + timedelta(seconds=1)) == []


def test_cron_is_evaluated_in_its_zone() -> None:
    got = cron_due("0 9 * * *", "America/New_York", utc(2026, 1, 5), utc(2026, 1, 6))
    assert got == [utc(2026, 1, 5, 14, 0)]  # 09:00 EST


def test_berlin_spring_forward_skipped_time_fires_once_when_the_gap_ends() -> None:
    # 2026-03-29 02:00 CET -> 03:00 CEST: 02:30 does not exist that day
    got = cron_due("30 2 * * *", "Europe/Berlin", utc(2026, 3, 27), utc(2026, 3, 31))
    assert wall(got, BERLIN) == [
        "03-27 02:30:00+0100",
        "03-28 02:30:00+0100",
        "03-29 03:00:00+0200",
        "03-30 02:30:00+0200",
    ]


def test_berlin_spring_forward_frequent_timer_does_not_double_fire() -> None:
    got = cron_due("*/30 * * * *", "Europe/Berlin", utc(2026, 3, 28, 23), utc(2026, 3, 29, 2))
    assert wall(got, BERLIN) == [
        "03-29 00:00:00+0100",
        "03-29 00:30:00+0100",
        "03-29 01:00:00+0100",
        "03-29 01:30:00+0100",
        "03-29 03:00:00+0200",
        "03-29 03:30:00+0200",
    ]
    assert len(set(got)) == len(got)


def test_berlin_fall_back_daily_timer_fires_once() -> None:
    # 2026-10-25 03:00 CEST -> 02:00 CET: 02:30 happens twice
    got = cron_due("30 2 * * *", "Europe/Berlin", utc(2026, 10, 23), utc(2026, 10, 27))
    assert wall(got, BERLIN) == [
        "10-23 02:30:00+0200",
        "10-24 02:30:00+0200",
        "10-25 02:30:00+0200",
        "10-26 02:30:00+0100",
    ]


def test_berlin_fall_back_hourly_wildcard_keeps_real_time_rhythm() -> None:
    got = cron_due("*/30 * * * *", "Europe/Berlin", utc(2026, 10, 24, 23), utc(2026, 10, 25, 2))
    assert [t - got[0] for t in got] == [timedelta(minutes=30 * i) for i in range(6)]
    assert wall(got, BERLIN)[-2:] == ["10-25 02:00:00+0100", "10-25 02:30:00+0100"]


def test_new_york_spring_forward_and_fall_back() -> None:
    # 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST
    spring = cron_due("15 2 * * *", "America/New_York", utc(2026, 3, 7), utc(2026, 3, 10))
    assert wall(spring, NEW_YORK) == ["03-07 02:15:00-0500", "03-08 03:00:00-0400", "03-09 02:15:00-0400"]
    fall = cron_due("30 1 * * *", "America/New_York", utc(2026, 10, 31), utc(2026, 11, 3))
    assert wall(fall, NEW_YORK) == ["10-31 01:30:00-0400", "11-01 01:30:00-0400", "11-02 01:30:00-0500"]
    assert fall[2] - fall[1] == timedelta(hours=25)


def test_window_starting_inside_the_repeated_hour() -> None:
    # GIVEN a window that starts in the second pass of New York's repeated 01:00-02:00
    start = utc(2026, 11, 1, 6, 10)  # 01:10 EST (second pass)
    # THEN a daily 01:30 job does not fire again, an every-15-minutes one does
    assert cron_due("30 1 * * *", "America/New_York", start, start + timedelta(hours=1)) == []
    assert wall(cron_due("*/15 * * * *", "America/New_York", start, start + timedelta(minutes=40)), NEW_YORK) == [
        "11-01 01:15:00-0500",
        "11-01 01:30:00-0500",
        "11-01 01:45:00-0500",
    ]


def test_month_ends() -> None:
    got = cron_due("0 0 31 * *", "UTC", utc(2026, 1, 1), utc(2026, 8, 1))
    assert [t.month for t in got] == [1, 3, 5, 7]  # only months with a 31st
    last = cron_due("0 12 28-31 2 *", "UTC", utc(2026, 2, 1), utc(2026, 3, 1))
    assert [t.day for t in last] == [28]


def test_feb_29_only_in_leap_years() -> None:
    got = cron_due("0 0 29 2 *", "UTC", utc(2025, 1, 1), utc(2033, 1, 1))
    assert [t.year for t in got] == [2028, 2032]


def test_month_end_crossing_in_a_zone() -> None:
    # midnight on the 1st in Berlin is still the previous month in UTC
    got = cron_due("0 0 1 * *", "Europe/Berlin", utc(2026, 1, 15), utc(2026, 4, 15))
    assert got == [utc(2026, 1, 31, 23), utc(2026, 2, 28, 23), utc(2026, 3, 31, 22)]


def test_segments_split_at_the_transition() -> None:
    parts = segments(utc(2026, 3, 29, 0), utc(2026, 3, 29, 3), BERLIN)
    assert [(p.start, p.offset) for p in parts] == [
        (utc(2026, 3, 29, 0), timedelta(hours=1)),
        (utc(2026, 3, 29, 1), timedelta(hours=2)),
    ]


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError):
        cron_due("* * * * *", "UTC", datetime(2026, 1, 1), datetime(2026, 1, 2))
