"""Bounded output capture: what the runners keep of an action's stdout, stderr and result channel.

An action may print far more than the worker should hold, so capture keeps a
fixed prefix, counts the rest and marks the text as cut; a cut stream is
never parsed as JSON.
"""

from __future__ import annotations

import codecs
import json
from typing import Any

TRUNCATION_MARKER = "\n... (output truncated)"


class OutputBuffer:
    """Keeps the first `limit` bytes of a stream and counts the rest, so memory stays bounded.

    The caller keeps reading (and we keep dropping) beyond the limit: an
    action that prints 10 MB must not block on a full pipe, and the worker
    must not hold 10 MB.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.dropped = 0

    def feed(self, chunk: bytes) -> None:
        """Take a chunk read from the pipe."""
        room = self.limit - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        self.dropped += max(0, len(chunk) - max(room, 0))

    @property
    def truncated(self) -> bool:
        """Whether anything was dropped."""
        return self.dropped > 0

    def text(self) -> str:
        """UTF-8 text (invalid bytes replaced); a cut stream loses its split last character and gets the marker."""
        if not self.truncated:
            return self.data.decode("utf-8", errors="replace")
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text = decoder.decode(self.data, final=False)  # drops a multi-byte character cut in half
        return text + TRUNCATION_MARKER


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json_output(text: str, *, truncated: bool = False) -> Any:
    """The value of stdout when the whole of it is one JSON document, else None.

    A cut stream is never parsed (its first megabyte could be valid JSON by
    accident), and NaN/Infinity are refused because PostgreSQL's jsonb and
    the API's clients cannot hold them.
    """
    stripped = text.strip()
    if truncated or not stripped:
        return None
    try:
        return json.loads(stripped, parse_constant=_refuse_constant)
    except ValueError:
        return None
