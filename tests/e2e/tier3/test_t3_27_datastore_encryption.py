"""T3.27 Datastore encryption at rest: ciphertext in the database, key outside it, plaintext via the API."""

from __future__ import annotations

import base64
import json

import psycopg
import pytest

from tests.e2e.client import Cloud

SECRET = "s3cr3t-value-for-t3-27"


def test_encrypted_value_is_not_in_the_database(cloud: Cloud) -> None:
    if cloud.database_url is None:
        pytest.fail("the local cloud did not publish its database URL in cloud.json")
    user = cloud.register("enc")
    # GIVEN an encrypted and a plain item
    assert user.post("/api/v1/datastore", {"key": "password", "value": SECRET, "encrypted": True}).status_code in (
        200,
        201,
    )
    assert user.post("/api/v1/datastore", {"key": "plain", "value": "visible"}).status_code in (200, 201)

    # WHEN the database is read directly
    with psycopg.connect(cloud.database_url) as conn:
        row = conn.execute(
            "SELECT value, encrypted, ciphertext, wrapped_key FROM attune.datastore_item "
            "WHERE tenant_id = %s AND key = 'password'",
            (user.tenant_id,),
        ).fetchone()
        dump = conn.execute(
            "SELECT string_agg(t::text, '|') FROM attune.datastore_item t WHERE tenant_id = %s", (user.tenant_id,)
        ).fetchone()
    assert row is not None and dump is not None
    value, encrypted, ciphertext, wrapped_key = row
    # THEN the value column is empty and no form of the plaintext is in the row
    assert encrypted is True and value is None
    blob = bytes(ciphertext)
    for form in (SECRET.encode(), json.dumps(SECRET).encode(), base64.b64encode(SECRET.encode())):
        assert form not in blob
        assert form.decode() not in dump[0]
    assert "visible" in dump[0], "the plain item is readable, so the check above could have failed"
    # AND the data key stored is wrapped (KMS ciphertext blob), not a bare 32-byte AES key
    assert wrapped_key is not None and len(bytes(wrapped_key)) > 32

    # AND the API returns the plaintext
    got = user.get("/api/v1/datastore/password")
    assert got.status_code == 200 and got.json()["value"] == SECRET and got.json()["encrypted"] is True


def test_no_key_material_column_in_the_schema(cloud: Cloud) -> None:
    if cloud.database_url is None:
        pytest.fail("the local cloud did not publish its database URL in cloud.json")
    with psycopg.connect(cloud.database_url) as conn:
        names = {
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'attune'"
            ).fetchall()
        }
    suspicious = {n for n in names if "key" in n or "secret" in n}
    # key: the datastore key's name; wrapped_key: the KMS-wrapped data key; storage_key and
    # pack_storage_key: a pack's S3 object key; webhook_secret: a trigger's sealed HMAC secret;
    # secret_parameters: an execution's sealed secret parameters (envelope-encrypted like the rest).
    # None of them is the datastore's encryption key.
    allowed = {"key", "wrapped_key", "storage_key", "pack_storage_key", "webhook_secret", "secret_parameters"}
    assert suspicious <= allowed, suspicious
