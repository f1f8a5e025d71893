"""T3.10 RBAC: each role may do exactly what it grants; denials are 403 with a clear message."""

from __future__ import annotations

import uuid

from tests.e2e.client import Cloud
from tests.e2e.packs import echo_pack


def test_roles_are_enforced_on_every_kind_of_endpoint(cloud: Cloud) -> None:
    # GIVEN an admin with a pack, and one user of each other role in the same tenant
    admin = cloud.register("rbac")
    ref = f"rbac_{uuid.uuid4().hex[:8]}"
    assert admin.post("/api/v1/packs", echo_pack(ref)).status_code == 201
    editor, executor, viewer = (admin.add_user(r) for r in ("editor", "executor", "viewer"))
    action = {
        "ref": f"{ref}.made_by_{{}}",
        "pack": ref,
        "runner_type": "shell",
        "code": "echo hi",
        "parameters": {},
    }
    run = {"action_ref": f"{ref}.hello", "parameters": {"message": "hi"}}

    # THEN the viewer reads but cannot create, run, change or manage users
    assert viewer.get("/api/v1/actions").status_code == 200
    assert viewer.get(f"/api/v1/actions/{ref}.hello").status_code == 200
    denied = viewer.post("/api/v1/actions", {**action, "ref": action["ref"].format("viewer")})
    assert denied.status_code == 403
    message = denied.json()["error"]["message"]
    assert "viewer" in message and "editor" in message, message
    assert viewer.post("/api/v1/executions", run).status_code == 403
    assert viewer.post("/api/v1/triggers", {"type": "webhook"}).status_code == 403
    assert viewer.post("/api/v1/datastore", {"key": "k", "value": 1}).status_code == 403
    assert viewer.delete(f"/api/v1/packs/{ref}").status_code == 403
    assert (
        viewer.post("/api/v1/users", {"username": "nope-" + ref, "password": "x" * 12, "role": "admin"}).status_code
        == 403
    )

    # AND the executor reads and runs, but does not create resources
    assert executor.post("/api/v1/executions", run).status_code == 201
    assert executor.post("/api/v1/actions", {**action, "ref": action["ref"].format("executor")}).status_code == 403
    assert executor.post("/api/v1/triggers", {"type": "webhook"}).status_code == 403

    # AND the editor creates and runs, but does not manage users
    assert editor.post("/api/v1/actions", {**action, "ref": action["ref"].format("editor")}).status_code == 201
    assert editor.post("/api/v1/executions", run).status_code == 201
    assert editor.post("/api/v1/triggers", {"type": "webhook"}).status_code == 201
    assert editor.get("/api/v1/users").status_code == 403

    # AND the admin does everything
    assert admin.post("/api/v1/actions", {**action, "ref": action["ref"].format("admin")}).status_code == 201
    assert admin.get("/api/v1/users").json()["total"] == 4


def test_permission_is_checked_before_the_body_is_read(cloud: Cloud) -> None:
    viewer = cloud.register("rbac").add_user("viewer")
    # A malformed body from a viewer is still a 403: the permission check comes first.
    resp = viewer.call("POST", "/api/v1/actions", content=b"{broken", headers={"Content-Type": "application/json"})
    assert resp.status_code == 403
