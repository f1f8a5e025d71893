"""Restarting the local cloud keeps its data usable: secrets still decrypt, packs still run.

The embedded database persists in the data directory but moto lives in memory;
without the saved KMS key every secret would be lost on a `make run` restart,
and without the mirrored pack bucket every action registered before it (`core`
included) would fail with "pack files ... not found in storage".

Clouds here run on private ports (never the default 18080-18082), from
`ATTUNE_API_PORT`/`ATTUNE_WS_PORT` when the caller set them.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from chalicelib.local import moto_server, moto_state
from chalicelib.local.harness import running_cloud

PASSWORD = "restart-password"
FINAL = {"succeeded", "failed", "canceled", "succeeded_with_errors"}
RUN_TIMEOUT_S = 60.0

ROLL_PY = """\
def run(**params):
    return {"rolled": params["name"].upper()}
"""
ROLL_YAML = """\
name: roll
runner_type: python3
entry_point: roll.py
parameters:
  name:
    type: string
    required: true
"""


def _cloud_env() -> dict[str, str]:
    """Private ports for the cloud and its moto, so that nothing else running here is disturbed."""
    return {
        "ATTUNE_API_PORT": os.environ.get("ATTUNE_API_PORT", "18300"),
        "ATTUNE_WS_PORT": os.environ.get("ATTUNE_WS_PORT", "18301"),
        "ATTUNE_MOTO_PORT": str(moto_server.free_port()),
    }


def _login(http: httpx.Client, username: str) -> dict[str, str]:
    resp = http.post("/auth/login", json={"username": username, "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


def _run(http: httpx.Client, auth: dict[str, str], action_ref: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """POST an execution and poll it (with a deadline) until it reaches a final status."""
    resp = http.post("/api/v1/executions", json={"action_ref": action_ref, "parameters": parameters}, headers=auth)
    assert resp.status_code == 201, resp.text
    execution_id = resp.json()["id"]
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        got = http.get(f"/api/v1/executions/{execution_id}", headers=auth)
        assert got.status_code == 200, got.text
        execution: dict[str, Any] = got.json()
        if execution["status"] in FINAL:
            return execution
        assert time.monotonic() < deadline, f"{action_ref} did not finish in {RUN_TIMEOUT_S}s: {execution}"
        time.sleep(0.2)


def test_encrypted_item_survives_restart() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="attune-restart-"))
    username = f"restart-{uuid.uuid4().hex[:8]}"
    # GIVEN an encrypted item stored by a first run of the cloud
    with running_cloud(data_dir=data_dir, extra_env=_cloud_env()) as cloud:
        http = httpx.Client(base_url=cloud.url, timeout=30)
        assert http.post("/auth/register", json={"username": username, "password": PASSWORD}).status_code == 201
        put = http.post(
            "/api/v1/datastore",
            json={"key": "db_password", "value": "hunter2-but-longer", "encrypted": True},
            headers=_login(http, username),
        )
        assert put.status_code == 201, put.text
    assert (data_dir / "moto-kms.json").exists()
    # WHEN the cloud is started again on the same data directory
    with running_cloud(data_dir=data_dir, extra_env=_cloud_env()) as cloud:
        http = httpx.Client(base_url=cloud.url, timeout=30)
        got = http.get("/api/v1/datastore/db_password", headers=_login(http, username))
    # THEN the item still decrypts
    assert got.status_code == 200, got.text
    assert got.json()["value"] == "hunter2-but-longer"
    # AND the restart used the stack's key again: it made no second one (each restart once did, kept forever,
    # and every kept key is recreated before moto serves)
    kept = json.loads((data_dir / "moto-kms.json").read_text())
    assert len(kept) == 1, [k["id"] for k in kept]
    assert {"TagKey": "attune:logical-id", "TagValue": "DataKey"} in kept[0]["tags"]


def test_packs_run_after_restart() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="attune-restart-packs-"))
    username = f"restart-{uuid.uuid4().hex[:8]}"
    ref = f"roller{uuid.uuid4().hex[:6]}"
    pack = {"ref": ref, "version": "1.0.0",
            "files": {"actions/roll.yaml": ROLL_YAML, "actions/roll.py": ROLL_PY}}
    # GIVEN a tenant whose pack ran in a first run of the cloud
    with running_cloud(data_dir=data_dir, extra_env=_cloud_env()) as cloud:
        http = httpx.Client(base_url=cloud.url, timeout=30)
        assert http.post("/auth/register", json={"username": username, "password": PASSWORD}).status_code == 201
        auth = _login(http, username)
        created = http.post("/api/v1/packs", json=pack, headers=auth)
        assert created.status_code == 201, created.text
        before = _run(http, auth, f"{ref}.roll", {"name": "first"})
        assert before["status"] == "succeeded", before
        # AND a webhook rule and a 1-second interval timer rule, both running the pack's action
        hook = http.post("/api/v1/triggers", json={"type": "webhook"}, headers=auth).json()
        timer = http.post("/api/v1/triggers", json={"type": "interval", "parameters": {"seconds": 1}},
                          headers=auth).json()
        for trigger, name in ((hook, "{{ trigger.data.name }}"), (timer, "tick")):
            rule = {"trigger_id": trigger["id"], "action_ref": f"{ref}.roll", "parameters": {"name": name}}
            assert http.post("/api/v1/rules", json=rule, headers=auth).status_code == 201
    # WHEN the cloud is stopped and started again on the same data directory
    with running_cloud(data_dir=data_dir, extra_env=_cloud_env()) as cloud:
        http = httpx.Client(base_url=cloud.url, timeout=30)
        # THEN the access token issued before the restart is still valid (the signing key was kept)
        assert http.get("/api/v1/packs", headers=auth).status_code == 200
        echo = _run(http, auth, "core.echo", {"message": "still here"})
        rolled = _run(http, auth, f"{ref}.roll", {"name": "second"})
        # AND the webhook rule made before the restart fires after it
        assert http.post(f"/api/v1/webhooks/{hook['id']}", json={"name": "hooked"}).status_code == 202
        # AND the timer made before the restart keeps firing (its events run the action too)
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while True:
            runs = http.get("/api/v1/executions", params={"limit": 200}, headers=auth).json()["items"]
            outputs = {(e["result"] or {}).get("output", {}).get("rolled") for e in runs
                       if e["status"] == "succeeded" and e["result"]}
            if {"HOOKED", "TICK"} <= outputs:
                break
            assert time.monotonic() < deadline, f"webhook/timer runs after the restart: {outputs}"
            time.sleep(0.2)
    # THEN the system pack and the tenant's pack both still run, on their stored files
    assert echo["status"] == "succeeded", echo
    assert echo["result"]["output"] == {"message": "still here"}
    assert rolled["status"] == "succeeded", rolled
    assert rolled["result"]["output"] == {"rolled": "SECOND"}


@pytest.fixture(name="state_dir")
def state_dir_fixture() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="attune-moto-state-") as folder:
        yield Path(folder)


def _s3(server: moto_server.MotoServer) -> Any:
    return boto3.client("s3", endpoint_url=server.url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def test_pack_objects_survive_a_killed_moto(state_dir: Path) -> None:
    # GIVEN a moto keeping the pack bucket, with one object uploaded, one overwritten and one deleted
    server = moto_server.start(moto_server.free_port(), state_dir=state_dir, kept_buckets=["kept-packs"])
    try:
        s3 = _s3(server)
        s3.create_bucket(Bucket="kept-packs")
        s3.put_bucket_versioning(Bucket="kept-packs", VersioningConfiguration={"Status": "Enabled"})
        s3.create_bucket(Bucket="other-bucket")
        s3.put_object(Bucket="kept-packs", Key="tenants/1/packs/a/1.0.0/pack.tar.gz", Body=b"old")
        s3.put_object(Bucket="kept-packs", Key="tenants/1/packs/a/1.0.0/pack.tar.gz", Body=b"new")
        s3.put_object(Bucket="kept-packs", Key="tenants/1/packs/b/1.0.0/pack.tar.gz", Body=b"gone")
        s3.delete_object(Bucket="kept-packs", Key="tenants/1/packs/b/1.0.0/pack.tar.gz")
        s3.put_object(Bucket="other-bucket", Key="x", Body=b"not kept")
    finally:
        # WHEN moto dies without any chance to save (SIGKILL right after the uploads were answered)
        server.process.kill()
        server.process.wait(10)
    assert list((state_dir / moto_state.S3_DIR_NAME).iterdir()) == [state_dir / moto_state.S3_DIR_NAME / "kept-packs"]
    # AND is started again by itself on the same state directory
    server = moto_server.start(moto_server.free_port(), state_dir=state_dir, kept_buckets=["kept-packs"])
    try:
        s3 = _s3(server)
        listed = s3.list_objects_v2(Bucket="kept-packs").get("Contents", [])
        body = s3.get_object(Bucket="kept-packs", Key="tenants/1/packs/a/1.0.0/pack.tar.gz")["Body"].read()
        buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    finally:
        server.stop()
    # THEN the kept bucket serves its latest objects, deleted ones stay deleted, other buckets are not kept
    assert [o["Key"] for o in listed] == ["tenants/1/packs/a/1.0.0/pack.tar.gz"]
    assert body == b"new"
    assert buckets == {"kept-packs"}


def test_a_system_pack_whose_object_was_lost_is_uploaded_again(cloud: dict[str, Any]) -> None:
    # GIVEN core registered, then its object lost (a data dir from before the bucket was kept, LocalStack)
    from chalicelib.aws import storage
    from chalicelib.aws.clients import client
    from chalicelib.aws.names import pack_bucket
    from chalicelib.packs.bootstrap import load_system_packs

    (first,) = load_system_packs()
    key = storage.pack_key(None, first.ref, first.version)
    stored = storage.get_pack_files(key)
    client("s3").delete_object(Bucket=pack_bucket(), Key=key)
    assert not storage.pack_exists(key)
    # WHEN the system packs are loaded again (every start of the cloud does)
    (second,) = load_system_packs()
    # THEN the same version is uploaded again under the same key, with the same files
    assert (second.ref, second.version, second.outcome) == (first.ref, first.version, "restored")
    assert storage.get_pack_files(key) == stored
    (third,) = load_system_packs()
    assert third.outcome == "unchanged"
