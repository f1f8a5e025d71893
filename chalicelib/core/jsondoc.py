"""Reading untrusted JSON into values every later layer can store and re-encode.

`json.loads` accepts documents the rest of the system cannot hold, and each
used to surface as a 500 somewhere downstream: nesting deep enough to hit
Python's recursion limit, integers past the 4300-digit conversion limit,
lone surrogates (`"\\ud800"`) that no UTF-8 encoder accepts, and NaN or
Infinity (not JSON, refused by PostgreSQL's jsonb). `parse` refuses all of
them up front with a `BadRequest` naming the problem.
"""

from __future__ import annotations

import json
import math
from typing import Any

from chalicelib.core.errors import BadRequest

MAX_DEPTH = 100  # objects and arrays inside each other; far past any real payload


def ascii_digits(text: str) -> bool:
    """Whether `text` is a plain decimal number: `str.isdigit` also accepts `²` and `①`, which `int()` refuses."""
    return text.isascii() and text.isdigit()


MAX_ID = 2**63 - 1  # PostgreSQL's bigint


def as_id(text: str) -> int | None:
    """`text` as a database id (1 .. 2**63-1) when it is one, else None; never raises on hostile digits."""
    if not ascii_digits(text) or len(text) > len(str(MAX_ID)):
        return None
    value = int(text)
    return value if 0 < value <= MAX_ID else None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _check(value: Any, what: str) -> None:
    """Walk iteratively (a recursive walk would overflow on the very input it guards against)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise BadRequest(f"{what}: a string holds a lone surrogate ({exc.object[exc.start:exc.end]!a}), "
                                 "which is not valid Unicode") from exc
        elif isinstance(node, float) and not math.isfinite(node):
            raise BadRequest(f"{what}: a number is out of range (it would be {node})")
        elif isinstance(node, dict | list):
            if depth > MAX_DEPTH:
                raise BadRequest(f"{what}: nested deeper than {MAX_DEPTH} levels")
            children = node.items() if isinstance(node, dict) else ((None, v) for v in node)
            for key, child in children:
                if key is not None:
                    stack.append((key, depth))
                stack.append((child, depth + 1))


def parse(raw: bytes | str, what: str = "request body") -> Any:
    """The JSON value in `raw`, or a `BadRequest` that says what is wrong with it."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw  # json.loads would guess UTF-16/32
        value = json.loads(text, parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise BadRequest(f"{what} is not UTF-8 encoded JSON") from exc
    except json.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON in {what}: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise BadRequest(f"{what}: nested deeper than {MAX_DEPTH} levels") from exc
    except ValueError as exc:  # an integer past Python's digit limit, NaN/Infinity
        raise BadRequest(f"{what}: {exc}") from exc
    _check(value, what)
    return value
