"""When a sensor polls: its schedule's expression, and the polls one minute-invocation spreads out. Pure.

EventBridge Scheduler's shortest rate is one minute. A sensor polling every
N seconds therefore runs on AWS as it is done for timers (ARCHITECTURE §5):
its schedule fires `rate(1 minute)`, and each invocation claims the polls
due in the coming minute, polling the first at once and sending each other
one as a delayed SQS message. An interval of whole minutes needs no
spreading (`rate(N minutes)`). The local scheduler fires `rate(N seconds)`
itself, so there a schedule fires each poll directly.
"""

from __future__ import annotations

from datetime import datetime, timedelta

MINUTE_S = 60


def schedule_expression(interval_s: int, *, second_rates: bool) -> str:
    """The sensor schedule's ScheduleExpression."""
    if interval_s < 1:
        raise ValueError(f"a poll interval is at least 1 s, got {interval_s}")
    if second_rates:
        return f"rate({interval_s} {'second' if interval_s == 1 else 'seconds'})"
    if interval_s % MINUTE_S == 0:
        minutes = interval_s // MINUTE_S
        return "rate(1 minute)" if minutes == 1 else f"rate({minutes} minutes)"
    return "rate(1 minute)"


def spreads(interval_s: int, *, second_rates: bool) -> bool:
    """Whether one invocation stands for several polls (or none): a sub-minute or uneven interval on AWS."""
    return not second_rates and interval_s % MINUTE_S != 0


def polls_in_window(anchor: datetime, interval_s: int, start: datetime, length_s: float = MINUTE_S) -> list[datetime]:
    """The poll times `anchor + k * interval` (k >= 0) in [start, start + length_s)."""
    step = timedelta(seconds=interval_s)
    end = start + timedelta(seconds=length_s)
    k = max(0, -((anchor - start) // step))  # the first k with anchor + k*step >= start
    found: list[datetime] = []
    due = anchor + k * step
    while due < end:
        found.append(due)
        due += step
    return found


def delay_s(due: datetime, now: datetime) -> int:
    """Whole seconds an SQS message waits to arrive at `due` (a poll is no timer: a second early or late is fine)."""
    return max(0, min(900, round((due - now).total_seconds())))
