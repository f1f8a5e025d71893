"""Timer trigger parameters: validated at creation so a bad timer is a 400, not a silent no-op.

Cron uses croniter semantics: five fields, or six with seconds first
(`*/5 * * * * *`), evaluated in the trigger's IANA time zone so DST changes
move fires the way a wall clock does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from chalicelib.core.errors import ValidationFailed

MAX_INTERVAL_SECONDS = 366 * 24 * 3600


def _only(params: dict[str, Any], allowed: set[str], kind: str) -> None:
    extra = set(params) - allowed
    if extra:
        raise ValidationFailed(f"{kind} trigger parameters accept only {sorted(allowed)}; unknown: {sorted(extra)}")


def validate_interval(params: dict[str, Any]) -> dict[str, Any]:
    """`{"seconds": int >= 1}`."""
    _only(params, {"seconds"}, "interval")
    seconds = params.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise ValidationFailed("interval trigger needs parameters.seconds as a whole number of seconds")
    if not 1 <= seconds <= MAX_INTERVAL_SECONDS:
        raise ValidationFailed(
            f"interval parameters.seconds must be between 1 and {MAX_INTERVAL_SECONDS}, got {seconds}"
        )
    return {"seconds": seconds}


def parse_instant(raw: Any) -> datetime:
    """An ISO-8601 timestamp that names its offset (a naive one is ambiguous)."""
    if not isinstance(raw, str):
        raise ValidationFailed("date trigger needs parameters.at as an ISO-8601 string with an offset")
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValidationFailed(f"date parameters.at is not ISO-8601: {raw!r}") from exc
    if at.tzinfo is None:
        raise ValidationFailed(f"date parameters.at must include a UTC offset (e.g. 2026-01-27T10:30:00Z), got {raw!r}")
    return at


def validate_date(params: dict[str, Any]) -> dict[str, Any]:
    """`{"at": ISO-8601 with offset}`; a past date is allowed and fires once, at once."""
    _only(params, {"at"}, "date")
    at = parse_instant(params.get("at"))
    return {"at": at.isoformat()}


def zone(name: Any) -> ZoneInfo:
    """An IANA time zone, or a 400 naming it."""
    if not isinstance(name, str) or not name:
        raise ValidationFailed("cron parameters.timezone must be an IANA zone name such as 'UTC'")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationFailed(f"unknown time zone {name!r}") from exc


def validate_cron(params: dict[str, Any]) -> dict[str, Any]:
    """`{"expression": 5 or 6 fields (seconds first), "timezone": IANA, default UTC}`."""
    _only(params, {"expression", "timezone"}, "cron")
    expression = params.get("expression")
    if not isinstance(expression, str) or not expression.strip():
        raise ValidationFailed("cron trigger needs parameters.expression")
    expression = " ".join(expression.split())
    fields = expression.split(" ")
    if len(fields) not in (5, 6):
        raise ValidationFailed(
            f"cron expression must have 5 fields, or 6 with seconds first; got {len(fields)}: {expression!r}"
        )
    tz_name = params.get("timezone", "UTC")
    tz = zone(tz_name)
    if not croniter.is_valid(expression, second_at_beginning=len(fields) == 6):
        raise ValidationFailed(f"invalid cron expression {expression!r}")
    try:
        croniter(expression, datetime.now(tz), second_at_beginning=len(fields) == 6).get_next(datetime)
    except (ValueError, KeyError) as exc:
        raise ValidationFailed(f"invalid cron expression {expression!r}: {exc}") from exc
    return {"expression": expression, "timezone": tz_name}


VALIDATORS = {"interval": validate_interval, "date": validate_date, "cron": validate_cron}


def validate_trigger_parameters(trigger_type: str, params: dict[str, Any]) -> dict[str, Any]:
    """Normalised parameters for a trigger type; webhooks and sensors take free-form ones."""
    validator = VALIDATORS.get(trigger_type)
    return validator(params) if validator else params
