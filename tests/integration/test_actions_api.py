"""Actions through the real app: own packs only, runner rules, system actions read-only, isolation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.helpers.api import ApiUser, register

CONTRACT_FIELDS = {
    "id", "ref", "pack", "name", "description", "runner_type", "entry_point", "parameters", "timeout",
    "retry", "http_config", "image", "workflow", "with_items", "concurrency", "enabled", "system", "created", "updated",
}
PACK_FILES = {"actions/run.py": "print('{}')\n", "actions/run.sh": "#!/bin/sh\necho hi\n"}


def with_pack(api: Any, ref: str = "ops", prefix: str = "user") -> ApiUser:
    user = register(api, prefix)
    status, body = user.post("/api/v1/packs", {"ref": ref, "version": "1.0.0", "files": PACK_FILES})
    assert status == 201, body
    return user


def audit_actions(user: ApiUser) -> list[str]:
    return [e["action"] for e in user.get("/api/v1/audit?entity_type=action")[1]["items"]]


def test_create_inline_code_action_and_read_it_by_id_and_ref(api: Any) -> None:
    # GIVEN a tenant with a pack
    user = with_pack(api)
    body = {"ref": "ops.hello", "pack": "ops", "runner_type": "python3", "code": "def run(name):\n    return name\n",
            "parameters": {"name": {"type": "string", "required": True, "secret": False}},
            "timeout": 30, "retry": {"max_attempts": 2, "delay_seconds": 2}, "description": "says hello"}
    # WHEN an action with inline code is created
    status, action = user.post("/api/v1/actions", body)
    # THEN the body follows the contract (no code in it), and a GET shows the code
    assert status == 201, action
    assert set(action) == CONTRACT_FIELDS
    assert (action["ref"], action["pack"], action["name"], action["system"]) == ("ops.hello", "ops", "hello", False)
    assert action["retry"] == {"max_attempts": 2, "delay_seconds": 2.0, "backoff_multiplier": 2.0,
                               "max_delay_seconds": 300.0, "on": ["failure", "timeout"]}
    assert action["parameters"] == body["parameters"]
    by_id = user.get(f"/api/v1/actions/{action['id']}")[1]
    assert by_id["code"] == body["code"]
    assert user.get("/api/v1/actions/ops.hello")[1]["id"] == action["id"]
    assert user.get("/api/v1/packs/ops")[1]["actions"] == ["ops.hello"]
    assert audit_actions(user) == ["action.created"]


def test_entry_point_must_be_a_file_of_the_pack(api: Any) -> None:
    user = with_pack(api)
    ok = {"ref": "ops.run", "runner_type": "shell", "entry_point": "run.sh"}
    assert user.post("/api/v1/actions", ok)[0] == 201
    status, err = user.post("/api/v1/actions", {**ok, "ref": "ops.nope", "entry_point": "missing.sh"})
    assert status == 400
    assert "entry_point 'missing.sh' not found" in err["error"]["message"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"ref": "ops.h", "runner_type": "http"}, "needs http_config"),
        ({"ref": "ops.h", "runner_type": "http", "http_config": {"method": "GET"}}, "http_config.url: Field required"),
        ({"ref": "ops.c", "runner_type": "container"}, "needs an image"),
        ({"ref": "ops.w", "runner_type": "workflow"}, "needs a workflow"),
        ({"ref": "ops.p", "runner_type": "python3"}, "needs an entry_point"),
        ({"ref": "ops.p", "runner_type": "ruby", "code": "x"}, "runner_type: Input should be"),
        ({"ref": "ops.p", "runner_type": "shell", "code": "x", "timeout": 0}, "timeout: Input should be greater"),
        ({"ref": "ops.p", "runner_type": "shell", "code": "x",
          "parameters": {"n": {"type": "integer", "default": "x"}}}, "parameters.n"),
        ({"ref": "other.p", "pack": "ops", "runner_type": "shell", "code": "x"}, "must start with the pack's ref"),
        ({"ref": "nodot", "runner_type": "shell", "code": "x"}, "ref: String should match pattern"),
    ],
)
def test_runner_and_body_rules_are_400_naming_the_problem(api: Any, body: dict[str, Any], problem: str) -> None:
    user = with_pack(api)
    status, err = user.post("/api/v1/actions", body)
    assert status == 400, err
    assert problem in err["error"]["message"]


def test_valid_http_container_and_workflow_actions(api: Any) -> None:
    user = with_pack(api)
    bodies = [
        {"ref": "ops.call", "runner_type": "http",
         "http_config": {"url": "https://example.com/{{ params.id }}", "method": "post", "headers": {"X": "1"}}},
        {"ref": "ops.box", "runner_type": "container", "image": "alpine:3", "code": "echo hi"},
        {"ref": "ops.flow", "runner_type": "workflow", "workflow": {"tasks": [{"name": "a", "action": "core.echo"}]}},
        {"ref": "ops.approve", "runner_type": "inquiry"},
    ]
    for body in bodies:
        status, action = user.post("/api/v1/actions", body)
        assert status == 201, action
    assert user.get("/api/v1/actions/ops.call")[1]["http_config"]["method"] == "POST"


def test_pack_must_be_the_tenants_own(api: Any) -> None:
    # GIVEN tenant A's pack, the system pack core, and tenant B
    with_pack(api, "apack", "a")
    b = register(api, "b")
    action = {"runner_type": "shell", "code": "true"}
    # WHEN B adds actions to an unknown pack or to A's pack THEN 404, the same for both (no existence leak);
    # to core THEN 422 naming the system pack
    cases = (
        ("nowhere.x", 404, "pack 'nowhere' not found"),
        ("apack.x", 404, "pack 'apack' not found"),
        ("core.x", 422, "pack 'core' is a system pack"),
    )
    for ref, code, problem in cases:
        status, err = b.post("/api/v1/actions", {"ref": ref, **action})
        assert status == code, err
        assert problem in err["error"]["message"]


def test_duplicate_action_is_409(api: Any) -> None:
    user = with_pack(api)
    body = {"ref": "ops.once", "runner_type": "shell", "code": "true"}
    assert user.post("/api/v1/actions", body)[0] == 201
    status, err = user.post("/api/v1/actions", body)
    assert status == 409
    assert "already exists" in err["error"]["message"]


def test_list_filters_and_includes_system_actions(api: Any) -> None:
    user = with_pack(api)
    user.post("/api/v1/actions", {"ref": "ops.a", "runner_type": "shell", "code": "true"})
    user.post("/api/v1/actions", {"ref": "ops.b", "runner_type": "inquiry"})
    listed = user.get("/api/v1/actions?limit=1000")[1]
    refs = [a["ref"] for a in listed["items"]]
    assert refs[:2] == ["ops.b", "ops.a"]  # newest first
    assert "core.echo" in refs
    assert listed["total"] == len(refs)
    assert [a["ref"] for a in user.get("/api/v1/actions?pack=ops")[1]["items"]] == ["ops.b", "ops.a"]
    assert [a["ref"] for a in user.get("/api/v1/actions?pack=ops&runner_type=inquiry")[1]["items"]] == ["ops.b"]
    assert user.get("/api/v1/actions?pack=nosuch")[1] == {"items": [], "total": 0, "limit": 50, "offset": 0}
    assert all(a["system"] for a in user.get("/api/v1/actions?pack=core")[1]["items"])
    assert "code" not in listed["items"][0]
    status, err = user.get("/api/v1/actions?runner_type=ruby")
    assert status == 400
    assert "runner_type" in err["error"]["message"]


def test_put_replaces_and_patch_changes_only_given_fields(api: Any) -> None:
    user = with_pack(api)
    _, action = user.post("/api/v1/actions", {"ref": "ops.x", "runner_type": "shell", "code": "echo 1",
                                              "timeout": 10, "description": "first"})
    path = f"/api/v1/actions/{action['id']}"
    # WHEN patched THEN only the given field changes
    status, patched = user.patch(path, {"description": "second"})
    assert status == 200, patched
    assert (patched["description"], patched["timeout"]) == ("second", 10)
    # WHEN patched with null THEN that field is cleared
    assert user.patch(path, {"timeout": None})[1]["timeout"] is None
    # WHEN replaced THEN omitted fields take their defaults (the GET body can be sent back)
    status, replaced = user.request("PUT", path, {"ref": "ops.x", "runner_type": "shell", "entry_point": "run.sh"})
    assert status == 200, replaced
    assert (replaced["entry_point"], replaced["description"]) == ("run.sh", None)
    assert user.get(path)[1]["code"] is None
    # WHEN a patch would make the action invalid THEN 400 and nothing changes
    status, err = user.patch(path, {"runner_type": "http"})
    assert status == 400
    assert "runner 'http' does not use an entry_point" in err["error"]["message"]
    assert user.get(path)[1]["runner_type"] == "shell"
    # WHEN the ref is changed THEN 400
    assert user.patch(path, {"ref": "ops.y"})[0] == 400
    assert audit_actions(user) == ["action.updated"] * 3 + ["action.created"]


def test_system_actions_readable_by_all_and_changeable_by_none(api: Any) -> None:
    a, b = register(api, "a"), register(api, "b")
    for user in (a, b):
        status, echo = user.get("/api/v1/actions/core.echo")
        assert status == 200
        assert (echo["system"], echo["runner_type"], echo["entry_point"]) == (True, "python3", "echo.py")
        for method, body in (("PATCH", {"description": "mine"}), ("PUT", {"runner_type": "inquiry"}),
                             ("DELETE", None)):
            status, err = user.request(method, f"/api/v1/actions/{echo['id']}", body)
            assert status == 403, (method, err)
            assert "system pack" in err["error"]["message"]
    assert a.get("/api/v1/actions/core.echo")[1]["description"] != "mine"


def test_other_tenants_actions_are_404(api: Any) -> None:
    a = with_pack(api, "apack", "a")
    _, action = a.post("/api/v1/actions", {"ref": "apack.x", "runner_type": "shell", "code": "true"})
    b = register(api, "b")
    path = f"/api/v1/actions/{action['id']}"
    assert b.get(path)[0] == 404
    assert b.get("/api/v1/actions/apack.x")[0] == 404
    assert b.patch(path, {"description": "hijack"})[0] == 404
    assert b.delete(path)[0] == 404
    assert "apack.x" not in [x["ref"] for x in b.get("/api/v1/actions?limit=1000")[1]["items"]]
    assert a.get(path)[1]["description"] is None


def test_delete_action(api: Any) -> None:
    user = with_pack(api)
    _, action = user.post("/api/v1/actions", {"ref": "ops.tmp", "runner_type": "shell", "code": "true"})
    assert user.delete(f"/api/v1/actions/{action['id']}") == (200, {"deleted": action["id"]})
    assert user.get(f"/api/v1/actions/{action['id']}")[0] == 404
    assert audit_actions(user) == ["action.deleted", "action.created"]


def test_viewer_reads_actions_but_cannot_create(api: Any) -> None:
    # GIVEN a viewer in a tenant that has a pack
    admin = with_pack(api)
    creds = {"username": f"v-{admin.username}", "password": "correct-horse-battery"}
    assert admin.post("/api/v1/users", {**creds, "role": "viewer"})[0] == 201
    login = admin.client.http.post("/auth/login", headers={"Content-Type": "application/json"}, body=json.dumps(creds))
    viewer = ApiUser(admin.client, creds["username"], json.loads(login.body)["access_token"], admin.tenant_id)
    # WHEN it reads and then tries to create THEN reading works and creating is 403
    assert viewer.get("/api/v1/actions/core.echo")[0] == 200
    status, err = viewer.post("/api/v1/actions", {"ref": "ops.v", "runner_type": "shell", "code": "true"})
    assert status == 403
    assert "viewer" in err["error"]["message"]
    assert admin.get("/api/v1/actions/ops.v")[0] == 404
