"""The tenant datastore: `/api/v1/datastore` (set, list) and `/api/v1/datastore/{key}` (get, delete).

Views only translate HTTP to `chalicelib.datastore` calls; encryption,
expiry and auditing live in the service so the worker gets the same rules.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from chalice import Blueprint, Response

from chalicelib import datastore
from chalicelib.api.context import Call, endpoint
from chalicelib.api.params import PAGE, BoolParam, TextParam, page
from chalicelib.api.serialize import iso, listing
from chalicelib.core.auth import Permission, allowed, denial_message
from chalicelib.core.errors import Forbidden, NotFound
from chalicelib.models.datastore import KEY_CHARS, MAX_KEY_LENGTH, DatastorePut, is_valid_key
from chalicelib.models.responses import DatastoreItem, DatastoreItemList, DeletedKey

bp = Blueprint(__name__)
LIST_DECRYPT = BoolParam("decrypt", "Show secrets' plaintext (editor or admin); masked otherwise.", default=False)
GET_DECRYPT = BoolParam("decrypt", "false masks a secret's value; by default it is decrypted.", default=True)
PREFIX = TextParam("prefix", "Only keys starting with this.", max_length=MAX_KEY_LENGTH,
                   pattern=f"^{KEY_CHARS}+$")


def render(item: datastore.Item) -> dict[str, Any]:
    """An item's API body; an encrypted item's value is the plaintext or the mask, never ciphertext."""
    return {
        "key": item.key,
        "value": item.value,
        "encrypted": item.encrypted,
        "expires_at": iso(item.expires_at),
        "created": iso(item.created),
        "updated": iso(item.updated),
    }


def path_key(raw: str) -> str:
    """The key named by a path segment.

    Keys may contain `/`, so clients send it as `%2F`; gateways differ on
    whether path parameters arrive decoded, and `%` is never part of a key,
    so decoding once is safe either way. A segment that cannot be a key
    cannot name an item: 404, like a non-numeric id.
    """
    key = unquote(raw) if "%" in raw else raw
    if not is_valid_key(key):
        raise NotFound(f"datastore key {raw[:80]!r} not found")
    return key


@bp.route("/api/v1/datastore", methods=["POST"])
@endpoint(Permission.WRITE, body=DatastorePut, status=201, actions_may_call=True, response=DatastoreItem,
          responses={200: DatastoreItem})
def put_item(call: Call) -> Response:
    """Set a key: 201 when it is new (or had expired), 200 when an existing item is replaced."""
    body: DatastorePut = call.body
    stored = datastore.put(
        call.cur,
        call.principal.tenant_id,
        body.key,
        body.value,
        encrypted=body.encrypted,
        ttl=body.ttl,
        actor=call.principal.actor,
    )
    return Response(body=render(stored.item), status_code=201 if stored.created else 200)


@bp.route("/api/v1/datastore", methods=["GET"])
@endpoint(Permission.READ, query=(*PAGE, PREFIX, LIST_DECRYPT), response=DatastoreItemList, errors=(403,))
def list_items(call: Call) -> dict[str, Any]:
    """The tenant's live items; secrets masked unless `?decrypt=true` by a role that may write."""
    window = page(call)
    prefix = PREFIX.read(call)
    decrypt = bool(LIST_DECRYPT.read(call))
    if decrypt and not allowed(call.principal.role, Permission.WRITE):
        raise Forbidden("listing decrypted secrets: " + denial_message(call.principal.role, Permission.WRITE))
    items, total = datastore.list_items(
        call.cur,
        call.principal.tenant_id,
        prefix=prefix,
        limit=window.limit,
        offset=window.offset,
        decrypt=decrypt,
    )
    return listing([render(i) for i in items], total, window.limit, window.offset)


@bp.route("/api/v1/datastore/{key}", methods=["GET"])
@endpoint(Permission.READ, actions_may_call=True, query=(GET_DECRYPT,), response=DatastoreItem)
def get_item(call: Call, key: str) -> dict[str, Any]:
    """One live item, decrypted (`?decrypt=false` masks it); 404 when absent or expired."""
    name = path_key(key)
    item = datastore.get(call.cur, call.principal.tenant_id, name, decrypt=bool(GET_DECRYPT.read(call)))
    if item is None:
        raise NotFound(f"datastore key {name!r} not found")
    return render(item)


@bp.route("/api/v1/datastore/{key}", methods=["DELETE"])
@endpoint(Permission.WRITE, actions_may_call=True, response=DeletedKey)
def delete_item(call: Call, key: str) -> dict[str, Any]:
    """Delete a key; 404 when absent or already expired."""
    name = path_key(key)
    if not datastore.delete(call.cur, call.principal.tenant_id, name, actor=call.principal.actor):
        raise NotFound(f"datastore key {name!r} not found")
    return {"deleted": name}
