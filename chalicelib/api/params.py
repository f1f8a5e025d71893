"""Query-string and path parameters: declared once, parsed strictly, each failure a 400 naming it.

A view lists the query parameters it reads in its `endpoint(query=...)`
declaration and reads each through the same object (`LIMIT.read(call)`), so
the parser and the OpenAPI document (chalicelib/api/openapi.py) describe one
thing; `Call.query` refuses a name the view did not declare, so a parameter
cannot be read without being documented.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from chalicelib.api.context import Call
from chalicelib.core.errors import BadRequest, NotFound
from chalicelib.core.jsondoc import as_id, ascii_digits

MAX_LIMIT = 1000
DEFAULT_LIMIT = 50
MAX_OFFSET = 10_000_000
MAX_BIGINT = 2**63 - 1
MAX_TEXT = 512  # a filter longer than any stored value could be cannot match one
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


@dataclass(frozen=True)
class Page:
    """A list request's window."""

    limit: int
    offset: int


@dataclass(frozen=True)
class QueryParam:
    """One optional query parameter: its name, what it means, and (in subclasses) its type and bounds."""

    name: str
    description: str

    def raw(self, call: Call) -> str | None:
        """The value as sent; None when absent or empty (an empty filter filters nothing)."""
        value = call.query(self.name)
        return None if value is None or value == "" else value

    def schema(self) -> dict[str, Any]:
        """The JSON schema of the value, for the OpenAPI document."""
        raise NotImplementedError

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI parameter object."""
        return {"name": self.name, "in": "query", "required": False, "description": self.description,
                "schema": self.schema()}


@dataclass(frozen=True)
class IntParam(QueryParam):
    """An integer within [low, high]; `default` when absent."""

    low: int = 1
    high: int = MAX_BIGINT
    default: int | None = None

    def read(self, call: Call) -> int | None:
        """The integer, or the default; 400 naming the parameter when it is not one in range."""
        raw = self.raw(call)
        if raw is None:
            return self.default
        if not ascii_digits(raw.removeprefix("-")) or len(raw) > 20:  # no 64-bit integer has more digits
            raise BadRequest(f"query parameter '{self.name}' must be an integer, got {raw[:80]!r}")
        value = int(raw)
        if not self.low <= value <= self.high:
            raise BadRequest(f"query parameter '{self.name}' must be between {self.low} and {self.high}, got {value}")
        return value

    def schema(self) -> dict[str, Any]:
        """An integer schema with the bounds and default the parser applies."""
        out: dict[str, Any] = {"type": "integer", "minimum": self.low, "maximum": self.high}
        if self.default is not None:
            out["default"] = self.default
        return out


@dataclass(frozen=True)
class BoolParam(QueryParam):
    """A boolean: true/false (1/0 and yes/no are accepted too)."""

    default: bool | None = None

    def read(self, call: Call) -> bool | None:
        """The boolean, or the default; 400 naming the parameter for anything else."""
        raw = self.raw(call)
        if raw is None:
            return self.default
        lowered = raw.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise BadRequest(f"query parameter '{self.name}' must be true or false, got {raw[:80]!r}")

    def schema(self) -> dict[str, Any]:
        """A boolean schema (clients send `true`/`false`)."""
        out: dict[str, Any] = {"type": "boolean"}
        if self.default is not None:
            out["default"] = self.default
        return out


@dataclass(frozen=True)
class ChoiceParam(QueryParam):
    """One of a fixed set of values."""

    choices: frozenset[str] = frozenset()

    def read(self, call: Call) -> str | None:
        """The value; 400 listing the allowed ones for anything else."""
        raw = self.raw(call)
        if raw is None:
            return None
        if raw not in self.choices:
            raise BadRequest(
                f"query parameter '{self.name}' must be one of {', '.join(sorted(self.choices))}; got {raw[:80]!r}"
            )
        return raw

    def schema(self) -> dict[str, Any]:
        """An enum schema."""
        return {"type": "string", "enum": sorted(self.choices)}


@dataclass(frozen=True)
class TextParam(QueryParam):
    """A free-text filter (an exact match), optionally restricted to a pattern."""

    max_length: int = MAX_TEXT
    pattern: str | None = None

    def read(self, call: Call) -> str | None:
        """The text; 400 naming the parameter when too long, not matching, or holding a NUL (no row can)."""
        raw = self.raw(call)
        if raw is None:
            return None
        if len(raw) > self.max_length:
            raise BadRequest(f"query parameter '{self.name}' must be at most {self.max_length} characters")
        if "\x00" in raw:
            raise BadRequest(f"query parameter '{self.name}' must not contain NUL characters")
        if self.pattern is not None and re.fullmatch(self.pattern, raw) is None:
            raise BadRequest(f"query parameter '{self.name}' must match {self.pattern}; got {raw[:80]!r}")
        return raw

    def schema(self) -> dict[str, Any]:
        """A string schema with the length (and pattern) the parser enforces."""
        out: dict[str, Any] = {"type": "string", "maxLength": self.max_length}
        if self.pattern is not None:
            out["pattern"] = self.pattern
        return out


LIMIT = IntParam("limit", "Page size.", low=1, high=MAX_LIMIT, default=DEFAULT_LIMIT)
OFFSET = IntParam("offset", "How many items to skip.", low=0, high=MAX_OFFSET, default=0)
PAGE = (LIMIT, OFFSET)


def page(call: Call) -> Page:
    """`limit` (default 50, max 1000) and `offset` (default 0)."""
    limit, offset = LIMIT.read(call), OFFSET.read(call)
    assert limit is not None and offset is not None
    return Page(limit, offset)


def id_filter(name: str, what: str) -> IntParam:
    """An optional id filter (`trigger_id=`, `parent_execution_id=`)."""
    return IntParam(name, f"Only {what}.", low=1, high=MAX_BIGINT)


def enabled_filter(what: str) -> BoolParam:
    """The common `enabled=` filter."""
    return BoolParam("enabled", f"Only enabled (true) or disabled (false) {what}.")


def names(params: Iterable[QueryParam]) -> frozenset[str]:
    """The names a declaration admits (what `Call.query` will read)."""
    return frozenset(p.name for p in params)


def path_id(raw: str, kind: str) -> int:
    """A numeric path id; anything else cannot name an existing resource, hence 404."""
    found = as_id(raw)
    if found is None:
        raise NotFound(f"{kind} {raw[:40]!r} not found")
    return found
