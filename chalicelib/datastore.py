"""The tenant datastore service: what the API and the worker's action helper call.

It joins the three layers an item passes through — JSON encoding, envelope
encryption (`core.crypto` sealing under a KMS data key from `aws.kms`) and
SQL (`db.datastore`) — so neither the API nor the worker can store a secret
in plaintext by calling the wrong function. Every function takes the
caller's cursor: the API's is a tenant transaction, the worker's a system
transaction, and both filter by `tenant_id` here in any case.

Writes and deletes are audited (key, encryption flag, TTL — never the value).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from psycopg.types.json import Jsonb

from chalicelib.aws import kms
from chalicelib.core import crypto
from chalicelib.core.errors import ValidationFailed
from chalicelib.core.params import MASK
from chalicelib.db import audit
from chalicelib.db import datastore as sql
from chalicelib.db.pool import Cursor
from chalicelib.models.datastore import check_key, check_ttl

MAX_VALUE_BYTES = 1024 * 1024
ENTITY_TYPE = "datastore_item"


@dataclass(frozen=True)
class Item:
    """One live item; `value` is `MASK` when the item is encrypted and was not decrypted."""

    key: str
    value: Any
    encrypted: bool
    expires_at: datetime | None
    created: datetime
    updated: datetime


class Stored(NamedTuple):
    """What `put` did: the item as stored (secrets masked) and whether the key is new."""

    item: Item
    created: bool


def _has_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        current = stack.pop()
        if isinstance(current, str):
            if "\x00" in current:
                return True
        elif isinstance(current, dict):
            stack.extend(current.keys())
            stack.extend(current.values())
        elif isinstance(current, list | tuple):
            stack.extend(current)
    return False


def _encode(value: Any) -> str:
    """Strict JSON that jsonb accepts too, so a value storable encrypted is storable plain.

    NaN/Infinity are not JSON, and PostgreSQL's jsonb refuses the NUL
    character in strings; both are refused here for either kind of item.
    """
    if _has_nul(value):
        raise ValidationFailed("value: strings cannot contain the NUL character (\\u0000)")
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(f"value: not representable as JSON ({exc})") from exc
    size = len(text.encode("utf-8"))
    if size > MAX_VALUE_BYTES:
        raise ValidationFailed(f"value: {size} bytes as JSON; the limit is {MAX_VALUE_BYTES}")
    return text


def _item(row: dict[str, Any], value: Any) -> Item:
    return Item(
        key=row["key"],
        value=value,
        encrypted=bool(row["encrypted"]),
        expires_at=row["expires_at"],
        created=row["created"],
        updated=row["updated"],
    )


def _seal(tenant_id: int, key: str, text: str) -> tuple[bytes, bytes]:
    data_key = kms.generate_data_key(tenant_id)
    blob = crypto.seal(data_key.plaintext, text.encode("utf-8"), crypto.associated_data(tenant_id, key))
    return blob, data_key.wrapped


def _open(tenant_id: int, key: str, ciphertext: bytes, wrapped_key: bytes) -> Any:
    try:
        data_key = kms.unwrap(tenant_id, bytes(wrapped_key))
        plaintext = crypto.open_sealed(data_key, bytes(ciphertext), crypto.associated_data(tenant_id, key))
    except crypto.DecryptionFailed as exc:
        raise crypto.DecryptionFailed(f"datastore key {key!r}: {exc.message}") from exc
    try:
        return json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise crypto.DecryptionFailed(f"datastore key {key!r}: decrypted value is not JSON") from exc


def put(
    cur: Cursor,
    tenant_id: int,
    key: str,
    value: Any,
    *,
    encrypted: bool = False,
    ttl: int | None = None,
    actor: str = "system",
) -> Stored:
    """Create or replace `key` with `value` (any JSON), sealed if `encrypted`, expiring after `ttl` s.

    A replace sets every attribute anew: omitting `ttl` makes the item
    permanent again, omitting `encrypted` stores it in plaintext. An
    encrypted item's plaintext exists only in memory: the row holds the
    sealed blob and the KMS-wrapped data key, and `value` stays NULL.
    """
    check_key(key)
    check_ttl(ttl)
    text = _encode(value)
    if encrypted:
        ciphertext, wrapped = _seal(tenant_id, key, text)
        row = sql.upsert(cur, tenant_id, key, value=None, ciphertext=ciphertext, wrapped_key=wrapped, ttl=ttl)
        item = _item(row, MASK)
    else:
        row = sql.upsert(
            cur,
            tenant_id,
            key,
            value=Jsonb(value, dumps=lambda _obj: text),
            ciphertext=None,
            wrapped_key=None,
            ttl=ttl,
        )
        item = _item(row, row["value"])
    sql.purge_expired(cur, tenant_id)
    created = bool(row["inserted"])
    audit.record(
        cur,
        tenant_id=tenant_id,
        actor=actor,
        action="datastore_item.set",
        entity_type=ENTITY_TYPE,
        entity_id=key,
        detail={"encrypted": encrypted, "ttl": ttl, "created": created},
    )
    return Stored(item, created)


def get(cur: Cursor, tenant_id: int, key: str, *, decrypt: bool = True) -> Item | None:
    """The live item at `key`, or None (absent and expired alike); secrets decrypted unless asked not to.

    Raises `crypto.DecryptionFailed` (422) when a secret cannot be opened.
    """
    check_key(key)
    row = sql.get(cur, tenant_id, key)
    if row is None:
        return None
    if not row["encrypted"]:
        return _item(row, row["value"])
    if not decrypt:
        return _item(row, MASK)
    return _item(row, _open(tenant_id, key, row["ciphertext"], row["wrapped_key"]))


def get_value(cur: Cursor, tenant_id: int, key: str) -> Any:
    """The value at `key`, decrypted, or None when absent: what an action's `read(key)` returns."""
    item = get(cur, tenant_id, key, decrypt=True)
    return None if item is None else item.value


def delete(cur: Cursor, tenant_id: int, key: str, *, actor: str = "system") -> bool:
    """Delete `key`; whether a live item was there (an expired one is purged and counts as absent)."""
    check_key(key)
    if not sql.delete(cur, tenant_id, key):
        return False
    audit.record(
        cur,
        tenant_id=tenant_id,
        actor=actor,
        action="datastore_item.deleted",
        entity_type=ENTITY_TYPE,
        entity_id=key,
    )
    return True


def list_items(
    cur: Cursor,
    tenant_id: int,
    *,
    prefix: str | None = None,
    limit: int = 50,
    offset: int = 0,
    decrypt: bool = False,
) -> tuple[list[Item], int]:
    """A page of live items, newest first, and the total; secrets masked unless `decrypt`.

    Masking is the default because a list is how secrets end up in
    dashboards, logs and terminal scrollback; whoever needs the values asks.
    """
    rows, total = sql.list_page(cur, tenant_id, prefix=prefix, limit=limit, offset=offset)
    sealed: dict[int, dict[str, Any]] = {}
    if decrypt:
        sealed = sql.sealed(cur, tenant_id, [int(r["id"]) for r in rows if r["encrypted"]])
    items = []
    for row in rows:
        if not row["encrypted"]:
            items.append(_item(row, row["value"]))
        elif decrypt and int(row["id"]) in sealed:
            s = sealed[int(row["id"])]
            items.append(_item(row, _open(tenant_id, row["key"], s["ciphertext"], s["wrapped_key"])))
        else:
            items.append(_item(row, MASK))
    return items, total


def purge_expired(cur: Cursor, tenant_id: int | None = None) -> int:
    """Reclaim expired rows: one tenant's (bounded batch), or every tenant's in a system transaction.

    Expired items are already invisible to every read; this only frees space.
    """
    if tenant_id is None:
        return sql.purge_expired_all(cur)
    return sql.purge_expired(cur, tenant_id)


class DatastoreView(Mapping[str, Any]):
    """`datastore` in templates (rule criteria and parameters, workflow inputs): read on first use, then cached.

    Both spellings of a dotted key work: `{{ datastore['config.api_url'] }}`
    and `{{ datastore.config.api_url }}` (when no key `config` exists but keys
    under `config.` do, `datastore.config` is the view of that prefix). A
    missing key is undefined, so it renders as null and is falsy in criteria.
    """

    def __init__(self, cur: Cursor, tenant_id: int, prefix: str = "", seen: dict[str, Any] | None = None) -> None:
        self._cur = cur
        self._tenant_id = tenant_id
        self._prefix = prefix
        self._seen: dict[str, Any] = {} if seen is None else seen

    def __getitem__(self, key: str) -> Any:
        full = f"{self._prefix}{key}"
        if full not in self._seen:
            try:
                value = get_value(self._cur, self._tenant_id, full)
            except ValidationFailed:  # not a key anyone could have stored
                value = None
            if value is None and sql.has_prefix(self._cur, self._tenant_id, f"{full}."):
                value = DatastoreView(self._cur, self._tenant_id, f"{full}.", self._seen)
            self._seen[full] = value
        if self._seen[full] is None:
            raise KeyError(key)
        return self._seen[full]

    def __iter__(self) -> Iterator[str]:
        start = len(self._prefix)
        return iter(k[start:] for k, v in self._seen.items() if v is not None and k.startswith(self._prefix)
                    and not isinstance(v, DatastoreView))

    def __len__(self) -> int:
        return sum(1 for _ in self)
