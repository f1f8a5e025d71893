"""EventBridge Scheduler expressions (`rate`, `cron`, `at`) and when they are due.

Pure: no clock, no I/O. The local scheduler asks one question of it: what is
the latest occurrence in (watermark, now]? It fires that one and moves the
watermark there, so an occurrence fires at most once and a stall coalesces
the missed ones into one fire, as a scheduler that fell behind should.
AWS cron has six fields (minutes hours day-of-month month day-of-week year),
numbers days of the week 1-7 from Sunday, and wants `?` in one of the two day
fields; it is translated to croniter's syntax rather than reimplemented.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.+)\)$")
_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_TICK = timedelta(microseconds=1)
UTC_ZONE = ZoneInfo("UTC")


class InvalidExpression(ValueError):
    """A schedule expression EventBridge Scheduler would reject."""


@dataclass(frozen=True)
class Rate:
    """Every `seconds`, from the schedule's start (its StartDate, else its creation)."""

    seconds: int


@dataclass(frozen=True)
class Cron:
    """An AWS cron, kept with its croniter translation."""

    aws: str
    croniter_expression: str


@dataclass(frozen=True)
class At:
    """Once, at a wall-clock time in the schedule's time zone."""

    local_time: datetime


Expression = Rate | Cron | At


def _dow_number(token: str) -> str:
    if token.isdigit():
        n = int(token)
        if not 1 <= n <= 7:
            raise InvalidExpression(f"day of week {token} is outside 1-7")
        return str(n - 1)
    if token.upper() not in _DAY_NAMES:
        raise InvalidExpression(f"unknown day of week {token!r}")
    return token.upper()


def _dow_item(item: str) -> str:
    if item in ("*", "?"):
        return "*"
    if item == "L":
        return "6"
    if m := re.fullmatch(r"(\w+)L", item):
        return f"L{_dow_number(m.group(1))}"
    if m := re.fullmatch(r"(\w+)#([1-5])", item):
        return f"{_dow_number(m.group(1))}#{m.group(2)}"
    if m := re.fullmatch(r"(\w+)(?:-(\w+))?(?:/(\d+))?", item):
        out = _dow_number(m.group(1))
        if m.group(2):
            out += "-" + _dow_number(m.group(2))
        if m.group(3):
            out += "/" + m.group(3)
        return out
    raise InvalidExpression(f"cannot read day of week {item!r}")


def aws_cron_to_croniter(fields: str) -> str:
    """`m h dom mon dow year` (AWS) -> croniter's `m h dom mon dow second year`."""
    parts = fields.split()
    if len(parts) != 6:
        raise InvalidExpression(f"cron needs 6 fields (minutes hours day-of-month month "
                                f"day-of-week year), got {len(parts)}")
    minute, hour, dom, month, dow, year = parts
    if (dom == "?") == (dow == "?"):
        raise InvalidExpression("cron needs '?' in exactly one of day-of-month and day-of-week")
    dow = ",".join(_dow_item(item) for item in dow.split(","))
    dom = "*" if dom == "?" else dom
    expr = f"{minute} {hour} {dom} {month} {dow} 0 {year}"
    if not croniter.is_valid(expr):
        raise InvalidExpression(f"invalid cron fields {fields!r}")
    return expr


def parse(expression: str) -> Expression:
    """Read a ScheduleExpression, as strictly as EventBridge Scheduler does."""
    text = expression.strip()
    if m := _RATE.match(text):
        value, unit = int(m.group(1)), m.group(2)
        if value < 1:
            raise InvalidExpression("rate value must be positive")
        if (value == 1) != (not unit.endswith("s")):
            raise InvalidExpression(f"use the {'singular' if value == 1 else 'plural'} unit "
                                    f"in {text!r}")
        return Rate(seconds=value * _UNIT_SECONDS[unit.rstrip("s")])
    if m := _CRON.match(text):
        return Cron(aws=m.group(1), croniter_expression=aws_cron_to_croniter(m.group(1)))
    if m := _AT.match(text):
        return At(local_time=datetime.fromisoformat(m.group(1)))
    raise InvalidExpression(f"not a rate(), cron() or at() expression: {expression!r}")


def zone(name: str | None) -> ZoneInfo:
    """The ScheduleExpressionTimezone (UTC when absent)."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidExpression(f"unknown time zone {name!r}") from exc


@dataclass(frozen=True)
class Window:
    """When a recurring schedule may fire: from `anchor`/StartDate until EndDate."""

    anchor: datetime
    start: datetime | None = None
    end: datetime | None = None
    tz: ZoneInfo = UTC_ZONE


def latest_due(expr: Expression, window: Window, after: datetime, now: datetime) -> datetime | None:
    """The latest occurrence in (after, now], or None: what the scheduler fires now.

    All datetimes are timezone-aware; the result is in UTC.
    """
    if window.start is not None and after < window.start - _TICK:
        after = window.start - _TICK
    if window.end is not None and now > window.end:
        now = window.end
    if now <= after:
        return None
    if isinstance(expr, At):
        when = expr.local_time.replace(tzinfo=window.tz).astimezone(UTC)
        return when if after < when <= now else None
    if isinstance(expr, Rate):
        if now < window.anchor:
            return None
        step = timedelta(seconds=expr.seconds)
        found = window.anchor + ((now - window.anchor) // step) * step
        return found.astimezone(UTC) if found > after else None
    local_now = now.astimezone(window.tz) + _TICK
    try:
        found = croniter(expr.croniter_expression, local_now).get_prev(datetime)
    except CroniterError:
        return None
    return found.astimezone(UTC) if found > after else None


def next_after(expr: Expression, window: Window, after: datetime) -> datetime | None:
    """The first occurrence strictly after `after` (for logs and tests)."""
    if window.start is not None and after < window.start - _TICK:
        after = window.start - _TICK
    found: datetime | None
    if isinstance(expr, At):
        when = expr.local_time.replace(tzinfo=window.tz).astimezone(UTC)
        found = when if when > after else None
    elif isinstance(expr, Rate):
        step = timedelta(seconds=expr.seconds)
        skipped = max(0, (after - window.anchor) // step + 1) if after >= window.anchor else 0
        found = window.anchor + skipped * step
    else:
        try:
            found = croniter(expr.croniter_expression, after.astimezone(window.tz)).get_next(datetime)
        except CroniterError:
            found = None
    if found is None or (window.end is not None and found > window.end):
        return None
    return found.astimezone(UTC)


def format_time(when: datetime) -> str:
    """`<aws.scheduler.scheduled-time>`'s format: UTC to the second."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
