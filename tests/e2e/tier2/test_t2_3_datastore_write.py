"""T2.3 Action writes to the datastore, a later task reads it: A -> B in a workflow.

The seed's data flow: A writes `config.api_url = "https://api.production.com"`
with the action helper (`attune_action.datastore_set`), B reads it
(`attune_action.datastore_get`) and outputs it. The value is in
`attune.datastore_item`, scoped to the tenant; a value written as a secret is
encrypted at rest and read back in plaintext; a TTL given by the action is
honoured.
"""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from tests.e2e.client import Cloud
from tests.e2e.workflow_flow import (
    at,
    children,
    create_workflow,
    new_pack,
    of_task,
    output,
    pack_action,
    run_workflow,
)

API_URL = "https://api.production.com"
SECRET = "t23-secret-token-value"
WRITE_PY = """\
import attune_action


def run(key, value, secret_key, secret, ttl_key):
    attune_action.datastore_set(key, value)
    attune_action.datastore_set(secret_key, secret, encrypted=True)
    attune_action.datastore_set(ttl_key, "short-lived", ttl=120)
    return {"written": [key, secret_key, ttl_key]}
"""
READ_PY = """\
import attune_action


def run(key, secret_key):
    url = attune_action.datastore_get(key)
    token = attune_action.datastore_get(secret_key)
    return {"url": url, "secret_matches": token == "t23-secret-token-value"}
"""


def test_a_writes_b_reads(cloud: Cloud) -> None:
    if cloud.database_url is None:
        pytest.fail("the local cloud did not publish its database URL in cloud.json")
    user, other = cloud.register("t23"), cloud.register("t23-other")
    # GIVEN action A that writes the datastore and action B that reads it
    pack = new_pack(user, "t23", {
        **pack_action("write", "python3", WRITE_PY, {name: {"type": "string", "required": True} for name in
                                                     ("key", "value", "secret_key", "secret", "ttl_key")}),
        **pack_action("read", "python3", READ_PY, {"key": {"type": "string", "required": True},
                                                   "secret_key": {"type": "string", "required": True}}),
    })
    # AND a workflow A -> B
    ref = create_workflow(user, pack, "flow", [
        {"name": "a", "action": f"{pack}.write",
         "input": {"key": "config.api_url", "value": "{{ parameters.url }}", "secret_key": "config.token",
                   "secret": SECRET, "ttl_key": "config.session"}},
        {"name": "b", "action": f"{pack}.read", "depends_on": ["a"],
         "input": {"key": "config.api_url", "secret_key": "config.token"}},
    ], parameters={"url": {"type": "string", "required": True}}, output={"url": "{{ b.result.url }}"})

    # WHEN it runs with the test data
    workflow = run_workflow(user, ref, {"url": API_URL})

    # THEN B read exactly what A wrote, after A wrote it
    assert workflow["status"] == "succeeded", str(workflow)
    assert output(workflow) == {"url": API_URL}
    kids = children(user, workflow["id"])
    (a,), (b,) = of_task(kids, "a"), of_task(kids, "b")
    assert a["status"] == "succeeded" and output(a) == {"written": ["config.api_url", "config.token",
                                                                   "config.session"]}, a
    assert output(b) == {"url": API_URL, "secret_matches": True}, str(b)
    assert at(b["started"]) >= at(a["finished"])
    # AND the secret never shows in either task's stored result
    for task in (a, b):
        assert SECRET not in str(task["result"]), str(task)

    # AND the API shows the values: the plain one as written, the secret decrypted, the TTL set
    got = user.get("/api/v1/datastore/config.api_url").json()
    assert got["value"] == API_URL and got["encrypted"] is False, str(got)
    token = user.get("/api/v1/datastore/config.token").json()
    assert token["value"] == SECRET and token["encrypted"] is True, str(token)
    session = user.get("/api/v1/datastore/config.session").json()
    assert session["expires_at"] is not None, str(session)
    lifetime = at(session["expires_at"]) - at(session["updated"])
    assert timedelta(seconds=115) <= lifetime <= timedelta(seconds=125), str(session)
    # AND scoped to the tenant: another tenant sees none of it
    for key in ("config.api_url", "config.token", "config.session"):
        assert other.get(f"/api/v1/datastore/{key}").status_code == 404, str(key)

    # AND it is persisted in attune.datastore_item: the plain value as JSON, the secret only sealed
    with psycopg.connect(cloud.database_url) as conn:
        rows = {
            key: (value, encrypted, ciphertext)
            for key, value, encrypted, ciphertext in conn.execute(
                "SELECT key, value, encrypted, ciphertext FROM attune.datastore_item WHERE tenant_id = %s",
                (user.tenant_id,),
            ).fetchall()
        }
    assert rows["config.api_url"][0] == API_URL and rows["config.api_url"][1] is False, str(rows)
    value, encrypted, ciphertext = rows["config.token"]
    assert encrypted is True and value is None and ciphertext is not None
    assert SECRET.encode() not in bytes(ciphertext)
