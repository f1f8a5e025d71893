"""T1.6 (API part) Key-value store: set and read values, tenant-scoped, absent keys 404, secrets decrypted.

The action side (an action reading the datastore through the worker's helper)
arrives with the worker and extends this file.
"""

from __future__ import annotations

from tests.e2e.client import Cloud


def test_datastore_round_trip_and_scoping(cloud: Cloud) -> None:
    a, b = cloud.register("kv-a"), cloud.register("kv-b")
    # GIVEN a value set by tenant A
    created = a.post("/api/v1/datastore", {"key": "api_url", "value": "https://api.example.com"})
    assert created.status_code in (200, 201), created.text
    # THEN A reads it back exactly
    got = a.get("/api/v1/datastore/api_url")
    assert got.status_code == 200 and got.json()["value"] == "https://api.example.com"
    # AND B does not see it, and an absent key is 404
    assert b.get("/api/v1/datastore/api_url").status_code == 404
    assert a.get("/api/v1/datastore/never_set").status_code == 404
    # AND structured and encrypted values survive the round trip
    assert a.post("/api/v1/datastore", {"key": "cfg", "value": {"retries": 3, "hosts": ["a", "b"]}}).status_code in (
        200,
        201,
    )
    assert a.get("/api/v1/datastore/cfg").json()["value"] == {"retries": 3, "hosts": ["a", "b"]}
    assert a.post("/api/v1/datastore", {"key": "token", "value": "tok-123", "encrypted": True}).status_code in (
        200,
        201,
    )
    secret = a.get("/api/v1/datastore/token").json()
    assert secret["value"] == "tok-123" and secret["encrypted"] is True
    # AND overwriting replaces, deleting removes
    assert a.post("/api/v1/datastore", {"key": "api_url", "value": "https://v2.example.com"}).status_code in (200, 201)
    assert a.get("/api/v1/datastore/api_url").json()["value"] == "https://v2.example.com"
    assert a.delete("/api/v1/datastore/api_url").status_code == 200
    assert a.get("/api/v1/datastore/api_url").status_code == 404
