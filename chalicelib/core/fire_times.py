"""When a timer is due: the fire times of interval, date and cron timers in a window.

Pure date maths, so the ticker (and its tests) can ask "which fires fall in
[from, to)?" without a clock or a database. All instants are aware UTC.

- interval: a grid `anchor + k * seconds` (k >= 1). Anchoring to a fixed
  instant keeps a timer free of drift, and because the ticker only asks for
  windows that start now, a timer re-enabled after an hour resumes at the
  next grid point instead of catching up on the fires it missed.
- date: one fire at `at`. A date that has not fired is due even when it is
  in the past (it fires once, at once); the caller knows whether it fired.
- cron: croniter semantics (5 fields, or 6 with seconds first) evaluated on
  the wall clock of the timer's zone, with the two DST cases cron users
  expect: wall times skipped by a spring-forward gap fire once, at the end of
  the gap; wall times repeated by a fall-back fire once (at their first
  occurrence) unless the hour field is `*`, in which case the timer keeps
  its real-time rhythm through the repeated hour (`*/5 * * * *` fires every
  five minutes of elapsed time, `30 2 * * *` fires once a day).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

MAX_FIRES = 10_000
_PROBE = timedelta(hours=1)
_SECOND = timedelta(seconds=1)
_MICRO = timedelta(microseconds=1)


@dataclass(frozen=True)
class Segment:
    """A part of the window in which the zone's UTC offset does not change."""

    start: datetime
    end: datetime
    offset: timedelta


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("fire-time maths needs aware datetimes")
    return value.astimezone(UTC)


def interval_due(seconds: int, anchor: datetime, start: datetime, end: datetime) -> list[datetime]:
    """Grid points `anchor + k*seconds` (k >= 1) in [start, end)."""
    if seconds < 1:
        raise ValueError("interval must be at least one second")
    anchor, start, end = _utc(anchor), _utc(start), _utc(end)
    step = timedelta(seconds=seconds)
    k = max(1, -((anchor - start) // step))  # ceil((start - anchor) / step), never before the first
    out: list[datetime] = []
    due = anchor + k * step
    while due < end and len(out) < MAX_FIRES:
        out.append(due)
        due += step
    return out


def date_due(at: datetime, end: datetime) -> list[datetime]:
    """The one fire of a date timer if it is due before `end` (a past date included)."""
    at = _utc(at)
    return [at] if at < _utc(end) else []


def _offset(instant: datetime, tz: ZoneInfo) -> timedelta:
    found = instant.astimezone(tz).utcoffset()
    assert found is not None
    return found


def _transition(lo: datetime, hi: datetime, tz: ZoneInfo) -> datetime:
    """The first whole second in (lo, hi] whose offset differs from lo's (zones change on seconds)."""
    base = _offset(lo, tz)
    a, b = math.floor(lo.timestamp()), math.ceil(hi.timestamp())
    while b - a > 1:
        mid = (a + b) // 2
        if _offset(datetime.fromtimestamp(mid, UTC), tz) == base:
            a = mid
        else:
            b = mid
    return datetime.fromtimestamp(b, UTC)


def segments(start: datetime, end: datetime, tz: ZoneInfo) -> list[Segment]:
    """Split [start, end) where the zone's offset changes (DST, or a zone's rule change).

    Probing hourly is enough: no zone changes its offset twice within an hour.
    """
    out: list[Segment] = []
    seg_start = probe = start
    while probe < end:
        nxt = min(probe + _PROBE, end)
        last = nxt if nxt < end else nxt - _MICRO
        if last > probe and _offset(last, tz) != _offset(probe, tz):
            change = _transition(probe, last, tz)
            out.append(Segment(seg_start, change, _offset(seg_start, tz)))
            seg_start = probe = change
            continue
        probe = nxt
    out.append(Segment(seg_start, end, _offset(seg_start, tz)))
    return [s for s in out if s.start < s.end]


def _walls(cron: str, six: bool, lo: datetime, hi: datetime) -> Iterator[datetime]:
    """Naive wall times in [lo, hi) that match the expression."""
    it = croniter(cron, lo.replace(microsecond=0) - _SECOND, second_at_beginning=six)
    count = 0
    while count < MAX_FIRES:
        wall: datetime = it.get_next(datetime)
        if wall >= hi:
            return
        if wall >= lo:
            count += 1
            yield wall


def _is_repeat(wall: datetime, offset: timedelta, tz: ZoneInfo) -> bool:
    """Whether `wall` at `offset` is the second pass of a wall time a fall-back repeats."""
    first, second = wall.replace(tzinfo=tz, fold=0).utcoffset(), wall.replace(tzinfo=tz, fold=1).utcoffset()
    return first != second and second == offset


def cron_due(expression: str, timezone: str, start: datetime, end: datetime) -> list[datetime]:
    """Fires of a cron expression in [start, end), evaluated on the zone's wall clock."""
    start, end = _utc(start), _utc(end)
    if start >= end:
        return []
    tz = ZoneInfo(timezone)
    six = len(expression.split()) == 6
    every_hour = croniter(expression, datetime(2000, 1, 1), second_at_beginning=six).expanded[1] == ["*"]
    found: set[datetime] = set()
    parts = segments(start, end, tz)
    for index, seg in enumerate(parts):
        lo = (seg.start + seg.offset).replace(tzinfo=None)
        hi = (seg.end + seg.offset).replace(tzinfo=None)
        for wall in _walls(expression, six, lo, hi):
            if not every_hour and _is_repeat(wall, seg.offset, tz):
                continue
            found.add((wall - seg.offset).replace(tzinfo=UTC))
        if index + 1 < len(parts):
            nxt = parts[index + 1]
            gap_from, gap_to = hi, (nxt.start + nxt.offset).replace(tzinfo=None)
            if gap_to > gap_from and next(_walls(expression, six, gap_from, gap_to), None) is not None:
                found.add(nxt.start)  # skipped wall times fire once, when the gap ends
    return sorted(found)[:MAX_FIRES]


def due_times(kind: str, params: dict[str, Any], *, anchor: datetime, start: datetime, end: datetime) -> list[datetime]:
    """The fires of a timer trigger (`interval`, `date`, `cron`) in [start, end)."""
    if kind == "interval":
        return interval_due(int(params["seconds"]), anchor, start, end)
    if kind == "date":
        return date_due(datetime.fromisoformat(str(params["at"]).replace("Z", "+00:00")), end)
    if kind == "cron":
        return cron_due(str(params["expression"]), str(params.get("timezone") or "UTC"), start, end)
    raise ValueError(f"{kind} is not a timer trigger type")
