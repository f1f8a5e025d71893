"""Restarting the local cloud keeps its data usable: encrypted datastore items still decrypt.

The embedded database persists in the data directory but moto lives in memory;
without the saved KMS key, every secret would be lost on `make run` restart.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import httpx

from chalicelib.local.harness import running_cloud

PASSWORD = "restart-password"


def test_encrypted_item_survives_restart() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="attune-restart-"))
    username = f"restart-{uuid.uuid4().hex[:8]}"
    # GIVEN an encrypted item stored by a first run of the cloud
    with running_cloud(data_dir=data_dir) as cloud:
        http = httpx.Client(base_url=cloud.url, timeout=30)
        assert http.post("/auth/register", json={"username": username, "password": PASSWORD}).status_code == 201
        token = http.post("/auth/login", json={"username": username, "password": PASSWORD}).json()["access_token"]
        put = http.post(
            "/api/v1/datastore",
            json={"key": "db_password", "value": "hunter2-but-longer", "encrypted": True},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert put.status_code == 201, put.text
    assert (data_dir / "moto-kms.json").exists()
    # WHEN the cloud is started again on the same data directory
    with running_cloud(data_dir=data_dir) as cloud:
        http = httpx.Client(base_url=cloud.url, timeout=30)
        token = http.post("/auth/login", json={"username": username, "password": PASSWORD}).json()["access_token"]
        got = http.get("/api/v1/datastore/db_password", headers={"Authorization": f"Bearer {token}"})
    # THEN the item still decrypts
    assert got.status_code == 200, got.text
    assert got.json()["value"] == "hunter2-but-longer"
