"""The datastore's body and the rules a key and a TTL must follow.

The rules live here, beside the HTTP body, and the service re-checks them
with `check_key`/`check_ttl` because the worker's action helper calls the
service directly, without a body to validate.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, JsonValue

from chalicelib.core.errors import ValidationFailed
from chalicelib.models.base import Contract

MAX_KEY_LENGTH = 256
KEY_CHARS = r"[A-Za-z0-9_.:/-]"
KEY_PATTERN = rf"^{KEY_CHARS}{{1,{MAX_KEY_LENGTH}}}$"
# Ten years: long enough for anything meant to expire, short enough that
# `now() + ttl` can never overflow a timestamp.
MAX_TTL_SECONDS = 10 * 365 * 24 * 3600

_KEY = re.compile(KEY_PATTERN)

Key = Annotated[str, Field(min_length=1, max_length=MAX_KEY_LENGTH, pattern=KEY_PATTERN)]
Ttl = Annotated[int, Field(ge=1, le=MAX_TTL_SECONDS)]


class DatastorePut(Contract):
    """`POST /api/v1/datastore`: set (create or replace) one key."""

    key: Key
    value: JsonValue
    encrypted: bool = False
    ttl: Ttl | None = None


def _preview(key: object) -> str:
    text = repr(key)
    return text if len(text) <= 60 else f"{text[:57]}..."


def is_valid_key(key: str) -> bool:
    """Whether `key` could name an item (used to turn hopeless path keys into 404s)."""
    return _KEY.fullmatch(key) is not None


def check_key(key: str) -> str:
    """`key`, or a 400 that says what a key may contain."""
    if not isinstance(key, str) or not is_valid_key(key):
        raise ValidationFailed(
            f"invalid datastore key {_preview(key)}: 1-{MAX_KEY_LENGTH} characters of A-Z a-z 0-9 _ . : / -"
        )
    return key


def check_ttl(ttl: int | None) -> int | None:
    """`ttl` in seconds, or a 400; None means the item never expires."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_TTL_SECONDS:
        raise ValidationFailed(f"invalid ttl {ttl!r}: an integer number of seconds, 1-{MAX_TTL_SECONDS}")
    return ttl
