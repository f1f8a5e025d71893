"""`key=value` arguments: what `attune run` and `attune inquiry respond` take on the command line.

A value is JSON when it parses as JSON (`count=3`, `ok=true`, `items='[1,2]'`),
else the text as typed (`message=hello world`), so the common case needs no
quoting and a typed value is still one keystroke away. `key:=text` forces a
string, for the rare value that looks like JSON but must stay text (`zip:=01234`);
and a parameter the action (or inquiry schema) declares a string is always
taken as typed, so `message=42` reaches `core.echo` as "42", as the user meant.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


class BadArgument(ValueError):
    """A `key=value` argument that cannot be read; the message names it."""


def parse_value(text: str) -> Any:
    """JSON when the text is JSON, else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def string_fields(properties: Mapping[str, Any] | None) -> frozenset[str]:
    """The names a parameter map (or a JSON Schema's `properties`) declares of type string."""
    return frozenset(name for name, spec in (properties or {}).items()
                     if isinstance(spec, Mapping) and spec.get("type") == "string")


def parse_pairs(pairs: Iterable[str], strings: Collection[str] = ()) -> dict[str, Any]:
    """`["a=1", "b=x"]` -> `{"a": 1, "b": "x"}`; keys in `strings` keep their text; a missing `=`,
    a bad key or a repeated key is refused."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise BadArgument(f"{pair!r} is not key=value")
        literal = key.endswith(":")
        key = key[:-1] if literal else key
        if not KEY.fullmatch(key):
            raise BadArgument(f"{pair!r}: {key!r} is not a parameter name (letters, digits, '_', '.', '-')")
        if key in out:
            raise BadArgument(f"{pair!r}: parameter {key!r} is given twice")
        out[key] = raw if literal or key in strings else parse_value(raw)
    return out
