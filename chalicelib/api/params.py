"""Query-string and path parameters: parsed strictly, each failure a 400 naming it."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.api.context import Call
from chalicelib.core.errors import BadRequest, NotFound
from chalicelib.core.jsondoc import as_id, ascii_digits

MAX_LIMIT = 1000
DEFAULT_LIMIT = 50
MAX_OFFSET = 10_000_000
_MAX_BIGINT = 2**63 - 1


@dataclass(frozen=True)
class Page:
    """A list request's window."""

    limit: int
    offset: int


def int_param(call: Call, name: str, *, default: int | None, low: int, high: int) -> int | None:
    """An integer query parameter within [low, high]."""
    raw = call.query(name)
    if raw is None or raw == "":
        return default
    if not ascii_digits(raw.removeprefix("-")) or len(raw) > 20:  # no 64-bit integer has more digits
        raise BadRequest(f"query parameter '{name}' must be an integer, got {raw!r}")
    value = int(raw)
    if not low <= value <= high:
        raise BadRequest(f"query parameter '{name}' must be between {low} and {high}, got {value}")
    return value


def page(call: Call) -> Page:
    """`limit` (default 50, max 1000) and `offset` (default 0)."""
    limit = int_param(call, "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
    offset = int_param(call, "offset", default=0, low=0, high=MAX_OFFSET)
    assert limit is not None and offset is not None
    return Page(limit, offset)


def id_param(call: Call, name: str) -> int | None:
    """An optional id filter (`trigger_id=`, `parent_execution_id=`)."""
    return int_param(call, name, default=None, low=1, high=_MAX_BIGINT)


def bool_param(call: Call, name: str) -> bool | None:
    """An optional boolean filter: true/false/1/0."""
    raw = call.query(name)
    if raw is None or raw == "":
        return None
    lowered = raw.lower()
    if lowered in {"true", "1", "yes"}:
        return True
    if lowered in {"false", "0", "no"}:
        return False
    raise BadRequest(f"query parameter '{name}' must be true or false, got {raw!r}")


def choice_param(call: Call, name: str, choices: frozenset[str]) -> str | None:
    """An optional filter restricted to known values."""
    raw = call.query(name)
    if raw is None or raw == "":
        return None
    if raw not in choices:
        raise BadRequest(f"query parameter '{name}' must be one of {', '.join(sorted(choices))}; got {raw!r}")
    return raw


def path_id(raw: str, kind: str) -> int:
    """A numeric path id; anything else cannot name an existing resource, hence 404."""
    found = as_id(raw)
    if found is None:
        raise NotFound(f"{kind} {raw[:40]!r} not found")
    return found
