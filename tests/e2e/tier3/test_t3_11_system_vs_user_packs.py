"""T3.11 System vs user packs: `core` is visible and runnable by every tenant; user packs stay private."""

from __future__ import annotations

import uuid

from tests.e2e.client import Cloud
from tests.e2e.packs import echo_pack


def test_system_pack_is_shared_and_user_packs_are_not(cloud: Cloud) -> None:
    a, b = cloud.register("sys-a"), cloud.register("sys-b")
    ref_a, ref_b = f"a_{uuid.uuid4().hex[:8]}", f"b_{uuid.uuid4().hex[:8]}"
    assert a.post("/api/v1/packs", echo_pack(ref_a)).status_code == 201
    assert b.post("/api/v1/packs", echo_pack(ref_b)).status_code == 201

    # WHEN both list packs THEN both see core (marked system) and only their own user pack
    for user, own, other in ((a, ref_a, ref_b), (b, ref_b, ref_a)):
        packs = {p["ref"]: p for p in user.get("/api/v1/packs?limit=1000").json()["items"]}
        assert packs["core"]["system"] is True
        assert own in packs and packs[own]["system"] is False
        assert other not in packs
        core_actions = {x["ref"] for x in user.get("/api/v1/actions?pack=core&limit=1000").json()["items"]}
        assert {"core.echo", "core.local", "core.http", "core.noop", "core.sleep"} <= core_actions

    # AND both can run a system action
    for user in (a, b):
        run = user.post("/api/v1/executions", {"action_ref": "core.echo", "parameters": {"message": "hi"}})
        assert run.status_code == 201, run.text
        assert run.json()["action_ref"] == "core.echo"

    # AND neither can change or delete the system pack, nor shadow its ref
    core_id = a.get("/api/v1/packs/core").json()["id"]
    assert a.delete(f"/api/v1/packs/{core_id}").status_code == 403
    assert a.post("/api/v1/packs", echo_pack("core")).status_code == 409
    assert b.get("/api/v1/packs/core").status_code == 200
