"""The tenant datastore through the real app: PostgreSQL with row-level security, moto's KMS.

Seed scenarios covered at this depth: T1.6 (read, absent key is null),
T2.3 (write through the service the worker uses, TTL), T3.20/T3.27 (secrets
never stored in plaintext, encryption key never stored, API decrypts).
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from chalicelib import datastore
from chalicelib.aws import kms, names
from chalicelib.aws.clients import client
from chalicelib.db.pool import system_tx, tenant_tx
from tests.helpers.api import ApiUser, register

SECRET = "hunter2-very-secret-value"
BASE = "/api/v1/datastore"


def _user_with_role(api: Any, admin: ApiUser, role: str) -> ApiUser:
    username = f"{admin.username}-{role}"
    status, body = admin.post("/api/v1/users", {"username": username, "password": "long-enough-pw", "role": role})
    assert status == 201, body
    resp = api.http.post(
        "/auth/login",
        headers={"Content-Type": "application/json"},
        body=json.dumps({"username": username, "password": "long-enough-pw"}),
    )
    assert resp.status_code == 200, resp.body
    return ApiUser(api, username, json.loads(resp.body)["access_token"], admin.tenant_id)


def _row(db: str, tenant_id: int, key: str) -> dict[str, Any] | None:
    """The raw table row, read as the database owner (no RLS, no API in between)."""
    with psycopg.connect(db, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT * FROM attune.datastore_item WHERE tenant_id = %s AND key = %s", (tenant_id, key)
        ).fetchone()


def _kms() -> Any:
    return client("kms")


# ------------------------------------------------------------------ round trips --


@pytest.mark.parametrize("value", ["https://api.example.com", 42, 3.5, True, None, [1, "two"], {"a": {"b": [1]}}])
def test_plain_value_round_trips_any_json(api: Any, value: Any) -> None:
    # GIVEN a tenant admin
    user = register(api)
    # WHEN a plain value is set
    status, body = user.post(BASE, {"key": "api_url", "value": value})
    # THEN it is created and reads back unchanged
    assert status == 201, body
    assert body["key"] == "api_url" and body["value"] == value and body["encrypted"] is False
    assert body["expires_at"] is None and body["created"].endswith("Z")
    status, body = user.get(f"{BASE}/api_url")
    assert status == 200 and body["value"] == value and body["encrypted"] is False


def test_setting_an_existing_key_replaces_it_with_200(api: Any) -> None:
    user = register(api)
    assert user.post(BASE, {"key": "k", "value": 1, "ttl": 3600})[0] == 201
    # WHEN the key is set again without a ttl
    status, body = user.post(BASE, {"key": "k", "value": 2})
    # THEN it is replaced (200), and every attribute is the new one (no ttl any more)
    assert status == 200 and body["value"] == 2 and body["expires_at"] is None
    assert user.get(f"{BASE}/k")[1]["value"] == 2


@pytest.mark.parametrize("value", [SECRET, {"user": "admin", "password": SECRET}, [SECRET], 7, None])
def test_encrypted_value_round_trips_and_is_masked_in_lists(api: Any, value: Any) -> None:
    # GIVEN an encrypted item
    user = register(api)
    status, body = user.post(BASE, {"key": "password", "value": value, "encrypted": True})
    # THEN the write answer does not echo the secret
    assert status == 201, body
    assert body["encrypted"] is True and body["value"] == datastore.MASK
    # WHEN it is read THEN the API decrypts it transparently
    status, body = user.get(f"{BASE}/password")
    assert status == 200 and body == {**body, "value": value, "encrypted": True}
    # AND a list masks it unless decryption is asked for
    _, listed = user.get(BASE)
    assert listed["items"][0]["value"] == datastore.MASK and listed["items"][0]["encrypted"] is True
    _, listed = user.get(f"{BASE}?decrypt=true")
    assert listed["items"][0]["value"] == value
    # AND ?decrypt=false on a single read masks it too
    assert user.get(f"{BASE}/password?decrypt=false")[1]["value"] == datastore.MASK


def test_encrypted_row_holds_no_plaintext_and_no_data_key(api: Any, db: str) -> None:
    # GIVEN an encrypted item (T3.27)
    user = register(api)
    status, _ = user.post(BASE, {"key": "db/password", "value": {"pw": SECRET}, "encrypted": True})
    assert status == 201
    # WHEN the table is queried directly
    row = _row(db, user.tenant_id, "db/password")
    assert row is not None
    # THEN the value column is NULL and only the sealed blob and wrapped key are stored
    assert row["encrypted"] is True and row["value"] is None
    ciphertext, wrapped = bytes(row["ciphertext"]), bytes(row["wrapped_key"])
    everything = b"".join(bytes(v) if isinstance(v, bytes | memoryview) else str(v).encode() for v in row.values())
    assert SECRET.encode() not in everything
    sealed_json = json.dumps({"pw": SECRET}, separators=(",", ":"))
    assert ciphertext[0] == 1 and len(ciphertext) == 1 + 12 + len(sealed_json) + 16
    # AND the plaintext data key (as KMS unwraps it for this tenant) is nowhere in the row
    data_key = _kms().decrypt(CiphertextBlob=wrapped, EncryptionContext={"tenant_id": str(user.tenant_id)})["Plaintext"]
    assert len(data_key) == 32 and data_key not in everything
    # AND no column but the wrapped blob names the KMS key
    key_id = _kms().describe_key(KeyId=names.data_key_alias())["KeyMetadata"]["KeyId"]
    others = json.dumps({k: v for k, v in row.items() if k not in ("ciphertext", "wrapped_key")}, default=str)
    assert key_id not in others and "alias/" not in others


def test_secret_is_not_in_the_audit_log(api: Any, db: str) -> None:
    # GIVEN a secret set and deleted
    user = register(api)
    user.post(BASE, {"key": "token", "value": SECRET, "encrypted": True})
    user.post(BASE, {"key": "plain", "value": "visible-but-not-audited"})
    assert user.delete(f"{BASE}/token")[0] == 200
    # WHEN the audit log is read
    status, audit = user.get("/api/v1/audit?entity_type=datastore_item")
    # THEN set and delete are recorded with the key, never the value
    assert status == 200
    actions = [(e["action"], e["entity_id"]) for e in audit["items"]]
    assert ("datastore_item.set", "token") in actions and ("datastore_item.deleted", "token") in actions
    assert ("datastore_item.set", "plain") in actions
    token_set = next(e for e in audit["items"] if e["entity_id"] == "token" and e["action"].endswith(".set"))
    assert token_set["detail"]["encrypted"] is True and token_set["actor"] == f"user:{user.username}"
    dumped = json.dumps(audit)
    assert SECRET not in dumped and "visible-but-not-audited" not in dumped


# ---------------------------------------------------------- tampering and moving --


def test_ciphertext_moved_to_another_tenants_row_fails_cleanly(api: Any, db: str) -> None:
    # GIVEN tenants A and B each with an encrypted item "password"
    a, b = register(api, "a"), register(api, "b")
    a.post(BASE, {"key": "password", "value": "a-secret", "encrypted": True})
    b.post(BASE, {"key": "password", "value": "b-secret", "encrypted": True})
    # WHEN A's sealed bytes are copied over B's row (a database-level attack)
    with psycopg.connect(db) as conn:
        conn.execute(
            "UPDATE attune.datastore_item AS dst SET ciphertext = src.ciphertext, wrapped_key = src.wrapped_key "
            "FROM attune.datastore_item AS src "
            "WHERE src.tenant_id = %s AND src.key = 'password' AND dst.tenant_id = %s AND dst.key = 'password'",
            (a.tenant_id, b.tenant_id),
        )
    kms.clear_cache()
    # THEN B cannot read A's secret: a clear 422, not a 500 and not A's plaintext
    status, body = b.get(f"{BASE}/password")
    assert status == 422, body
    assert body["error"]["code"] == "decryption_failed" and "password" in body["error"]["message"]
    assert "a-secret" not in json.dumps(body)
    # AND listing with decryption fails the same way, while the masked list still works
    assert b.get(f"{BASE}?decrypt=true")[0] == 422
    assert b.get(BASE)[0] == 200
    # AND A is unaffected
    assert a.get(f"{BASE}/password")[1]["value"] == "a-secret"


def test_ciphertext_moved_to_another_key_of_the_same_tenant_fails(api: Any, db: str) -> None:
    user = register(api)
    user.post(BASE, {"key": "one", "value": "first", "encrypted": True})
    user.post(BASE, {"key": "two", "value": "second", "encrypted": True})
    with psycopg.connect(db) as conn:
        conn.execute(
            "UPDATE attune.datastore_item AS dst SET ciphertext = src.ciphertext, wrapped_key = src.wrapped_key "
            "FROM attune.datastore_item AS src "
            "WHERE src.tenant_id = %(t)s AND src.key = 'one' AND dst.tenant_id = %(t)s AND dst.key = 'two'",
            {"t": user.tenant_id},
        )
    status, body = user.get(f"{BASE}/two")
    assert status == 422 and body["error"]["code"] == "decryption_failed"


@pytest.mark.parametrize("column", ["ciphertext", "wrapped_key"])
def test_tampered_sealed_bytes_fail_cleanly(api: Any, db: str, column: str) -> None:
    # GIVEN an encrypted item whose stored bytes are altered
    user = register(api)
    user.post(BASE, {"key": "k", "value": SECRET, "encrypted": True})
    row = _row(db, user.tenant_id, "k")
    assert row is not None
    altered = bytearray(row[column])
    altered[-1] ^= 0x01
    with psycopg.connect(db) as conn:
        conn.execute(
            f"UPDATE attune.datastore_item SET {column} = %s WHERE id = %s",  # noqa: S608 - column from the parametrize list
            (bytes(altered), row["id"]),
        )
    kms.clear_cache()
    # WHEN it is read THEN a 422 says it cannot be decrypted
    status, body = user.get(f"{BASE}/k")
    assert status == 422 and body["error"]["code"] == "decryption_failed"


# -------------------------------------------------------------------------- TTL --


def _expire(db: str, tenant_id: int, key: str) -> None:
    """Move an item's expiry into the past, as the database owner: its TTL has run out, now.

    Waiting out a real TTL makes the "still readable inside the TTL" check race a
    slow machine; setting the clock on the row keeps every assertion meaningful.
    """
    with psycopg.connect(db) as conn:
        moved = conn.execute(
            "UPDATE attune.datastore_item SET expires_at = now() - interval '1 second' "
            "WHERE tenant_id = %s AND key = %s AND expires_at IS NOT NULL",
            (tenant_id, key),
        ).rowcount
    assert moved == 1, f"no item {key!r} with a TTL to expire"


def test_ttl_sets_the_expiry_from_now(api: Any, db: str) -> None:
    # GIVEN a tenant WHEN it sets an item with a one-hour TTL
    user = register(api)
    status, body = user.post(BASE, {"key": "hour", "value": 1, "ttl": 3600})
    assert status == 201 and body["expires_at"] is not None
    # THEN the stored expiry is one hour after the database's now (give or take the request)
    with psycopg.connect(db) as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM expires_at - now()) AS left_s FROM attune.datastore_item "
            "WHERE tenant_id = %s AND key = 'hour'", (user.tenant_id,),
        ).fetchone()
    assert row is not None and 3500 < float(row[0]) <= 3600
    # AND an item without a TTL never expires
    assert user.post(BASE, {"key": "forever", "value": 1})[1]["expires_at"] is None


def test_ttl_expiry_hides_the_item_at_once_and_it_is_purged_lazily(api: Any, db: str) -> None:
    # GIVEN an item with a TTL, readable while the TTL runs
    user = register(api)
    status, body = user.post(BASE, {"key": "short", "value": "lived", "ttl": 60})
    assert status == 201 and body["expires_at"] is not None
    status, read = user.get(f"{BASE}/short")
    assert status == 200 and read["value"] == "lived"
    assert [i["key"] for i in user.get(BASE)[1]["items"]] == ["short"]
    # WHEN the TTL runs out THEN the next read is 404 at once, though nothing purged the row yet
    _expire(db, user.tenant_id, "short")
    status, err = user.get(f"{BASE}/short")
    assert status == 404 and err["error"]["code"] == "not_found"
    assert _row(db, user.tenant_id, "short") is not None
    # AND it is gone from lists
    _, listed = user.get(BASE)
    assert "short" not in [i["key"] for i in listed["items"]] and listed["total"] == 0
    # AND setting the key again creates a new item (201, not a 200 replace)
    assert user.post(BASE, {"key": "short", "value": "again"})[0] == 201
    assert user.get(f"{BASE}/short")[1]["value"] == "again"


def test_expired_rows_are_purged_by_later_writes(api: Any, db: str) -> None:
    user = register(api)
    user.post(BASE, {"key": "gone", "value": SECRET, "encrypted": True, "ttl": 60})
    _expire(db, user.tenant_id, "gone")
    assert user.get(f"{BASE}/gone")[0] == 404
    # the expired row still exists until something purges it
    assert _row(db, user.tenant_id, "gone") is not None
    # WHEN another key is written THEN the expired row is reclaimed
    user.post(BASE, {"key": "other", "value": 1})
    assert _row(db, user.tenant_id, "gone") is None


def test_deleting_an_expired_item_is_404(api: Any, db: str) -> None:
    user = register(api)
    user.post(BASE, {"key": "brief", "value": 1, "ttl": 60})
    _expire(db, user.tenant_id, "brief")
    assert user.delete(f"{BASE}/brief")[0] == 404


# ------------------------------------------------------------- keys, lists, CRUD --


def test_url_encoded_keys(api: Any) -> None:
    # GIVEN a key with slashes and colons
    user = register(api)
    assert user.post(BASE, {"key": "config/prod:api.url", "value": "x"})[0] == 201
    # WHEN it is addressed with its slash URL-encoded THEN it is found and deleted
    status, body = user.get(f"{BASE}/config%2Fprod%3Aapi.url")
    assert status == 200 and body["key"] == "config/prod:api.url"
    assert user.get(f"{BASE}/config%2Fprod:api.url")[0] == 200
    assert user.delete(f"{BASE}/config%2Fprod:api.url") == (200, {"deleted": "config/prod:api.url"})
    assert user.get(f"{BASE}/config%2Fprod:api.url")[0] == 404


def test_absent_keys_are_404(api: Any) -> None:
    user = register(api)
    status, body = user.get(f"{BASE}/missing")
    assert status == 404 and body["error"]["code"] == "not_found" and "missing" in body["error"]["message"]
    assert user.delete(f"{BASE}/missing")[0] == 404
    # a segment that cannot be a key is simply not found
    assert user.get(f"{BASE}/has%20space")[0] == 404


def test_list_filters_by_prefix_and_paginates_newest_first(api: Any) -> None:
    user = register(api)
    for key in ("app/a", "app/b", "app/c", "other"):
        user.post(BASE, {"key": key, "value": key})
    status, page = user.get(f"{BASE}?prefix=app/&limit=2")
    assert status == 200
    assert [i["key"] for i in page["items"]] == ["app/c", "app/b"]
    assert (page["total"], page["limit"], page["offset"]) == (3, 2, 0)
    _, page = user.get(f"{BASE}?prefix=app%2F&limit=2&offset=2")
    assert [i["key"] for i in page["items"]] == ["app/a"] and page["total"] == 3
    assert user.get(f"{BASE}?prefix=has%20space")[0] == 400
    assert user.get(f"{BASE}?limit=0")[0] == 400


def test_another_tenants_keys_are_404(api: Any) -> None:
    # GIVEN tenant A's key
    a, b = register(api, "a"), register(api, "b")
    a.post(BASE, {"key": "shared-name", "value": "a-value"})
    a.post(BASE, {"key": "a-secret", "value": SECRET, "encrypted": True})
    # THEN tenant B can neither see, read nor delete it
    assert b.get(f"{BASE}/shared-name")[0] == 404
    assert b.get(f"{BASE}/a-secret")[0] == 404
    assert b.delete(f"{BASE}/shared-name")[0] == 404
    assert b.get(f"{BASE}?decrypt=true")[1]["items"] == []
    # AND B's own key of the same name is a separate item
    assert b.post(BASE, {"key": "shared-name", "value": "b-value"})[0] == 201
    assert a.get(f"{BASE}/shared-name")[1]["value"] == "a-value"
    assert b.get(f"{BASE}/shared-name")[1]["value"] == "b-value"


def test_viewer_reads_but_cannot_write(api: Any) -> None:
    # GIVEN an admin's items and a viewer of the same tenant
    admin = register(api)
    admin.post(BASE, {"key": "conf", "value": 1})
    admin.post(BASE, {"key": "pw", "value": SECRET, "encrypted": True})
    viewer = _user_with_role(api, admin, "viewer")
    # THEN the viewer can read and list
    status, body = viewer.get(f"{BASE}/conf")
    assert status == 200 and body["value"] == 1
    assert viewer.get(f"{BASE}/pw")[1]["value"] == SECRET
    assert viewer.get(BASE)[1]["total"] == 2
    # BUT not set, delete, or bulk-decrypt a list
    status, body = viewer.post(BASE, {"key": "conf", "value": 2})
    assert status == 403 and "viewer" in body["error"]["message"]
    assert viewer.delete(f"{BASE}/conf")[0] == 403
    assert viewer.get(f"{BASE}?decrypt=true")[0] == 403
    assert admin.get(f"{BASE}/conf")[1]["value"] == 1
    # AND an editor may decrypt a list
    editor = _user_with_role(api, admin, "editor")
    _, listed = editor.get(f"{BASE}?decrypt=true")
    assert {i["key"]: i["value"] for i in listed["items"]}["pw"] == SECRET


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"key": 5, "value": 1}, "key"),
        ({"key": "", "value": 1}, "key"),
        ({"key": "k" * 257, "value": 1}, "key"),
        ({"key": "white space", "value": 1}, "key"),
        ({"key": "ünïcode", "value": 1}, "key"),
        ({"value": 1}, "key"),
        ({"key": "k"}, "value"),
        ({"key": "k", "value": 1, "encrypted": "yes"}, "encrypted"),
        ({"key": "k", "value": 1, "encrypted": 1}, "encrypted"),
        ({"key": "k", "value": 1, "ttl": "60"}, "ttl"),
        ({"key": "k", "value": 1, "ttl": 1.5}, "ttl"),
        ({"key": "k", "value": 1, "ttl": 0}, "ttl"),
        ({"key": "k", "value": 1, "ttl": -5}, "ttl"),
        ({"key": "k", "value": 1, "ttl": True}, "ttl"),
        ({"key": "k", "value": 1, "ttl": 10**12}, "ttl"),
        ({"key": "k", "value": 1, "secret": True}, "secret"),
    ],
)
def test_bad_bodies_are_400_naming_the_field(api: Any, body: dict[str, Any], field: str) -> None:
    user = register(api)
    status, answer = user.post(BASE, body)
    assert status == 400, answer
    assert field in answer["error"]["message"]
    assert user.get(BASE)[1]["total"] == 0


def test_key_of_exactly_256_characters_is_accepted(api: Any) -> None:
    user = register(api)
    key = "k" * 256
    assert user.post(BASE, {"key": key, "value": 1})[0] == 201
    assert user.get(f"{BASE}/{key}")[1]["key"] == key


@pytest.mark.parametrize(
    "raw",
    [
        b'{"key": "k", "value": NaN}',
        b'{"key": "k", "value": {"x": Infinity}}',
        b'{"key": "k", "value": "nul\\u0000"}',
        b'{"key": "k", "value": {"nul\\u0000": 1}, "encrypted": true}',
    ],
)
def test_values_jsonb_cannot_hold_are_400_for_plain_and_secret_alike(api: Any, raw: bytes) -> None:
    user = register(api)
    status, body = user.request("POST", BASE, raw=raw)
    message = body["error"]["message"]
    # NaN/Infinity are refused as the body is read (not JSON at all); a NUL when the value is checked
    assert status == 400 and (message.startswith("value:") or "is not valid JSON" in message), message


# ------------------------------------------------- the service the worker calls --


def test_service_reads_and_writes_for_actions(cloud: dict[str, Any], db: str) -> None:
    # GIVEN a tenant (as the worker sees it: a system transaction, tenant passed explicitly)
    with system_tx() as cur:
        cur.execute("INSERT INTO attune.tenant (name) VALUES ('t') RETURNING id")
        row = cur.fetchone()
        assert row is not None
        tenant = int(row["id"])
    # WHEN an action writes a plain and a secret value, one with a TTL (T2.3)
    with system_tx() as cur:
        stored = datastore.put(cur, tenant, "config.api_url", "https://api.production.com", actor="execution:1")
        assert stored.created
        datastore.put(cur, tenant, "api_key", SECRET, encrypted=True, ttl=3600, actor="execution:1")
    # THEN another action reads exactly those values, decrypted; absent keys are None (T1.6)
    with system_tx() as cur:
        assert datastore.get_value(cur, tenant, "config.api_url") == "https://api.production.com"
        assert datastore.get_value(cur, tenant, "api_key") == SECRET
        assert datastore.get_value(cur, tenant, "never-set") is None
        item = datastore.get(cur, tenant, "api_key", decrypt=False)
        assert item is not None and item.value == datastore.MASK and item.expires_at is not None
    # AND the same items are visible in the tenant's own transaction, and another tenant's is empty
    with tenant_tx(tenant) as cur:
        items, total = datastore.list_items(cur, tenant, decrypt=True)
        assert total == 2 and {i.key: i.value for i in items}["api_key"] == SECRET
    with tenant_tx(tenant + 1000) as cur:
        assert datastore.get_value(cur, tenant + 1000, "config.api_url") is None
    row2 = _row(db, tenant, "api_key")
    assert row2 is not None and row2["value"] is None
    with system_tx() as cur:
        assert datastore.delete(cur, tenant, "api_key", actor="execution:2")
        assert not datastore.delete(cur, tenant, "api_key", actor="execution:2")
