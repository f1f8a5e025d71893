"""T1.6 Key-value store: set and read values, tenant-scoped, absent keys 404, secrets decrypted.

The API side first; then the action side: an action reads, through the
worker's helper (`attune_action.datastore_get`), what was set via the API —
secrets decrypted, absent keys `None`, only its own tenant's values.
"""

from __future__ import annotations

from tests.e2e.client import Cloud, User
from tests.e2e.flow import action_files, register_pack, run_action, unique_ref

READ_PY = """\
import attune_action


def run(key):
    return {"key": key, "value": attune_action.datastore_get(key)}
"""


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


def _reader(user: User) -> str:
    """Register a pack whose action `read` returns the datastore value of `key`; its ref."""
    ref = unique_ref("kv")
    register_pack(user, ref, action_files("read", "python3", READ_PY, {"key": {"type": "string", "required": True}}))
    return f"{ref}.read"


def _read(user: User, action_ref: str, key: str) -> object:
    execution = run_action(user, action_ref, {"key": key})
    assert execution["status"] == "succeeded", execution
    output = execution["result"]["output"]
    assert output["key"] == key, output
    return output["value"]


def test_action_reads_the_datastore(cloud: Cloud) -> None:
    a, b = cloud.register("kv-act-a"), cloud.register("kv-act-b")
    # GIVEN tenant A's plain, structured and encrypted values, set via the API
    for body in (
        {"key": "api_url", "value": "https://api.example.com"},
        {"key": "cfg", "value": {"retries": 3, "hosts": ["a", "b"]}},
        {"key": "token", "value": "tok-123", "encrypted": True},
    ):
        assert a.post("/api/v1/datastore", body).status_code in (200, 201)
    # AND tenant B's own value under the same key
    assert b.post("/api/v1/datastore", {"key": "api_url", "value": "https://b.example.org"}).status_code in (200, 201)
    a_read, b_read = _reader(a), _reader(b)

    # WHEN A's action reads them THEN it gets exactly what was set, the secret decrypted
    assert _read(a, a_read, "api_url") == "https://api.example.com"
    assert _read(a, a_read, "cfg") == {"retries": 3, "hosts": ["a", "b"]}
    assert _read(a, a_read, "token") == "tok-123"
    # AND a key never set is null, not an error
    assert _read(a, a_read, "never_set") is None

    # AND B's action sees B's value, and none of A's
    assert _read(b, b_read, "api_url") == "https://b.example.org"
    assert _read(b, b_read, "token") is None
    assert _read(b, b_read, "cfg") is None
