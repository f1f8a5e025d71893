"""Rows to API bodies: timestamps as ISO-8601 UTC with milliseconds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any


def iso(value: datetime | None) -> str | None:
    """`2026-01-27T10:30:00.123Z`, the contract's timestamp form."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def pick(row: Mapping[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    """The public fields of a row, with timestamps rendered."""
    out: dict[str, Any] = {}
    for name in fields:
        value = row.get(name)
        out[name] = iso(value) if isinstance(value, datetime) else value
    return out


def listing(items: list[dict[str, Any]], total: int, limit: int, offset: int) -> dict[str, Any]:
    """The list contract: `{"items", "total", "limit", "offset"}`."""
    return {"items": items, "total": total, "limit": limit, "offset": offset}
