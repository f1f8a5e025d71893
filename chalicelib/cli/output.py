"""How the CLI shows answers: rich tables for people, the API's JSON unchanged for scripts (`--json`).

A column is a header and a dotted path into the row, so each command states
what a person wants to see and the JSON form stays exactly what the API
sent (scripts never parse a table).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

Column = tuple[str, str]  # header, dotted path in the row


PIPE_WIDTH = 200


def console() -> Console:
    """Standard output; when it is not a terminal (a pipe, a test), no colour codes and wide lines
    rather than 80 columns, so `grep` finds a row on one line."""
    out = Console(highlight=False)
    return out if out.is_terminal else Console(highlight=False, width=PIPE_WIDTH)


def dig(row: Any, path: str) -> Any:
    """The value at a dotted path of a row (None when any step is missing)."""
    value = row
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def cell(value: Any) -> str:
    """One value as table text: lists joined, mappings as compact JSON, None blank."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list) and all(isinstance(v, str | int) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, Mapping | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def print_json(data: Any) -> None:
    """The API's answer as pretty JSON on standard output."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def table(rows: Sequence[Any], columns: Sequence[Column], *, title: str | None = None,
          total: int | None = None) -> None:
    """Rows as a table; the caption says how many there are in all when a page shows fewer."""
    out = Table(title=title, show_lines=False, header_style="bold")
    for header, _ in columns:
        out.add_column(header, overflow="fold")
    for row in rows:
        out.add_row(*(cell(dig(row, path)) for _, path in columns))
    if total is not None and total > len(rows):
        out.caption = f"{len(rows)} of {total} (use --limit/--offset)"
    console().print(out)
    if not rows:
        console().print("(none)")


def record(row: Mapping[str, Any], fields: Sequence[Column] | None = None, *, title: str | None = None) -> None:
    """One resource as a two-column table of field and value."""
    out = Table(title=title, show_header=False, box=None, pad_edge=False)
    out.add_column("field", style="bold")
    out.add_column("value", overflow="fold")
    for header, path in fields or [(k, k) for k in row]:
        value = dig(row, path)
        if value is not None or fields is None:
            out.add_row(header, cell(value))
    console().print(out)


def text(message: str) -> None:
    """A line for people (never mixed into --json output)."""
    console().print(message, markup=False)


def note(message: str) -> None:
    """A progress or hint line on standard error, so standard output stays the answer."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
