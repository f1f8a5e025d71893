"""Packs through the real app: PostgreSQL (RLS on) and moto S3 (T3.11, T3.26, T2.12)."""

from __future__ import annotations

import base64
import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest

from chalicelib.aws.clients import client
from chalicelib.aws.names import pack_bucket
from chalicelib.aws.storage import fetch_pack, get_pack_files
from chalicelib.packs.bootstrap import load_system_packs
from tests.helpers.api import ApiUser, register
from tests.integration.test_worker import deliver, execution, work_record
from tests.integration.test_worker import request as request_execution

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "packs" / "test_pack"
ECHO_PY = "import json, sys\nprint(json.dumps({'v': 1}))\n"


@pytest.fixture(autouse=True)
def _no_tenant_objects_from_earlier_tests(moto_endpoint: str) -> None:
    """The moto server lives for the session while each test's database is new (tenant ids restart)."""
    bucket = client("s3")
    listed = bucket.list_objects_v2(Bucket=pack_bucket(), Prefix="tenants/")
    for obj in listed.get("Contents", []):
        if not obj["Key"].startswith("tenants/system/"):
            bucket.delete_object(Bucket=pack_bucket(), Key=obj["Key"])


def fixture_files() -> dict[str, str]:
    return {p.relative_to(FIXTURE).as_posix(): p.read_text() for p in sorted(FIXTURE.rglob("*")) if p.is_file()}


def action_yaml(name: str, entry: str = "echo.py") -> str:
    return f"name: {name}\nrunner_type: python3\nentry_point: {entry}\n"


def archive(files: dict[str, str | bytes], members: list[tarfile.TarInfo] | None = None) -> str:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for member in members or []:
            tar.addfile(member)
    return base64.b64encode(buf.getvalue()).decode()


def s3_keys(prefix: str) -> list[str]:
    listed = client("s3").list_objects_v2(Bucket=pack_bucket(), Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def audit_actions(user: ApiUser, entity_type: str) -> list[str]:
    status, body = user.get(f"/api/v1/audit?entity_type={entity_type}")
    assert status == 200, body
    return [e["action"] for e in body["items"]]


def as_role(admin: ApiUser, role: str) -> ApiUser:
    username = f"{role}-{admin.username}"[:60]
    creds = {"username": username, "password": "correct-horse-battery"}
    status, body = admin.post("/api/v1/users", {**creds, "role": role})
    assert status == 201, body
    resp = admin.client.http.post(
        "/auth/login", headers={"Content-Type": "application/json"},
        body=json.dumps(creds),
    )
    assert resp.status_code == 200, resp.body
    return ApiUser(admin.client, username, json.loads(resp.body)["access_token"], admin.tenant_id)


def test_register_inline_files_stores_pack_actions_and_object(api: Any) -> None:
    # GIVEN a tenant and the fixture pack's files inline (T2.12: with a requirements.txt)
    user = register(api)
    files = {**fixture_files(), "requirements.txt": "requests==2.28.0\n"}
    # WHEN it registers them (ref and version come from pack.yaml)
    status, pack = user.post("/api/v1/packs", {"files": files})
    # THEN the pack and its action exist, and S3 holds exactly those files under the version's key
    assert status == 201, pack
    assert (pack["ref"], pack["version"], pack["system"]) == ("test_pack", "1.0.0", False)
    assert pack["actions"] == ["test_pack.echo"]
    assert pack["files"] == sorted(files)
    key = f"tenants/{user.tenant_id}/packs/test_pack/1.0.0/pack.tar.gz"
    assert s3_keys(f"tenants/{user.tenant_id}/") == [key]
    assert get_pack_files(key) == {k: v.encode() for k, v in files.items()}
    status, action = user.get("/api/v1/actions/test_pack.echo")
    assert status == 200
    assert (action["runner_type"], action["entry_point"], action["pack"]) == ("python3", "echo.py", "test_pack")
    assert action["parameters"]["message"] == {"type": "string", "required": True, "description": "Text to echo."}
    assert audit_actions(user, "pack") == ["pack.registered"]


def test_worker_can_fetch_a_pack_version_to_a_directory(api: Any, tmp_path: Path) -> None:
    # GIVEN a registered pack with a script
    user = register(api)
    files = {"actions/run.sh": "#!/bin/sh\necho hi\n", "actions/lib/util.py": "X = 1\n"}
    _, pack = user.post("/api/v1/packs", {"ref": "w", "version": "1.0.0", "files": files})
    # WHEN the worker fetches its version THEN the files are unpacked there, scripts executable
    dest = fetch_pack(f"tenants/{user.tenant_id}/packs/w/1.0.0/pack.tar.gz", tmp_path / "w")
    assert (dest / "actions/lib/util.py").read_text() == "X = 1\n"
    assert (dest / "actions/run.sh").stat().st_mode & 0o111
    assert pack["files"] == sorted(files)


def test_register_archive_with_top_directory(api: Any) -> None:
    # GIVEN `tar czf test_pack.tar.gz test_pack/` as base64
    user = register(api)
    encoded = archive({f"test_pack/{k}": v for k, v in fixture_files().items()})
    # WHEN registered with a body label THEN the archive's pack.yaml is at the root and the body wins
    status, pack = user.post("/api/v1/packs", {"archive": encoded, "label": "From tarball"})
    assert status == 201, pack
    assert pack["label"] == "From tarball"
    assert "pack.yaml" in pack["files"]
    assert pack["actions"] == ["test_pack.echo"]


@pytest.mark.parametrize(
    ("member", "problem"),
    [("../../evil.py", "'..'"), ("/etc/evil", "absolute")],
)
def test_path_traversal_archive_is_refused_and_nothing_stored(api: Any, member: str, problem: str) -> None:
    # GIVEN an archive with a path that leaves the pack
    user = register(api)
    encoded = archive({"pack.yaml": "ref: evil\nversion: 1.0.0\n", member: "pwned"})
    # WHEN registered THEN 400 naming the entry, and no row, action or object was written
    status, err = user.post("/api/v1/packs", {"archive": encoded})
    assert status == 400
    assert problem in err["error"]["message"]
    assert user.get("/api/v1/packs?ref=evil")[1]["total"] == 0
    assert s3_keys(f"tenants/{user.tenant_id}/") == []


def test_archive_with_symlink_is_refused(api: Any) -> None:
    user = register(api)
    link = tarfile.TarInfo("actions/passwd")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    status, err = user.post("/api/v1/packs", {"ref": "ln", "version": "1.0.0", "archive": archive({}, [link])})
    assert status == 400
    assert "actions/passwd" in err["error"]["message"]


def test_bad_action_yaml_rejects_whole_registration_naming_the_file(api: Any) -> None:
    # GIVEN a pack with one good and one broken action file
    user = register(api)
    files = {"actions/echo.py": ECHO_PY, "actions/good.yaml": action_yaml("good"),
             "actions/broken.yaml": "name: broken\nrunner_type: python3\nentry_point: [oops\n"}
    # WHEN registered
    status, err = user.post("/api/v1/packs", {"ref": "mixed", "version": "1.0.0", "files": files})
    # THEN 400 names the file, and neither the pack nor the good action was stored
    assert status == 400
    assert err["error"]["message"].startswith("actions/broken.yaml: invalid YAML")
    assert user.get("/api/v1/packs?ref=mixed")[1]["total"] == 0
    assert user.get("/api/v1/actions/mixed.good")[0] == 404
    assert s3_keys(f"tenants/{user.tenant_id}/") == []


PROCESS_PY = "def run(n):\n    return {'doubled': n * 2}\n"


@pytest.mark.parametrize("entry", ["actions/process.py", "process.py"])
def test_entry_point_from_pack_root_or_actions_registers_and_runs(
    worker_env: None, api: Any, entry: str
) -> None:
    # GIVEN a pack whose action names its file as the seed does (T1.5, from the pack root)
    # or as StackStorm does (from actions/)
    user = register(api)
    files = {"actions/process.py": PROCESS_PY,
             "actions/process.yaml": f"name: process\nrunner_type: python3\nentry_point: {entry}\n"
                                     "parameters:\n  n: {type: integer, required: true}\n"}
    # WHEN it is registered THEN it is accepted, the entry point kept as written
    status, pack = user.post("/api/v1/packs", {"ref": "seedform", "version": "1.0.0", "files": files})
    assert status == 201, pack
    assert pack["actions"] == ["seedform.process"]
    assert user.get("/api/v1/actions/seedform.process")[1]["entry_point"] == entry
    # AND WHEN it runs THEN the worker finds actions/process.py and the action's result comes back
    execution_id = request_execution(user, "seedform.process", {"n": 21})
    assert deliver(work_record(execution_id)) == {"batchItemFailures": []}
    done = execution(user, execution_id)
    assert done["status"] == "succeeded", done
    assert done["result"]["output"] == {"doubled": 42}


@pytest.mark.parametrize(
    ("body", "status_code", "problem"),
    [
        ({"ref": "Bad Ref", "version": "1.0.0"}, 400, "ref: String should match pattern"),
        ({"ref": "p", "version": "1.0"}, 400, "version: String should match pattern"),
        ({"ref": "p"}, 400, "version is required"),
        ({"ref": "p", "version": "1.0.0", "files": {}, "archive": "eA=="}, 400, "not both"),
        ({"ref": "p", "version": "1.0.0", "archive": "not base64!"}, 400, "base64"),
        ({"ref": "p", "version": "1.0.0", "archive": "aGVsbG8="}, 400, "not a readable tar.gz"),
        ({"ref": "p", "version": "1.0.0", "files": {"../x": "y"}}, 400, "'..'"),
        ({"ref": "p", "version": "1.0.0", "files": {"pack.yaml": "ref: q\n"}}, 400, "does not match"),
        ({"ref": "p", "version": "1.0.0", "files": {"actions/a.yaml": "runner_type: python3\nentry_point: a.py\n"}},
         400, "actions/a.yaml: entry_point 'a.py' not found"),
    ],
)
def test_invalid_registrations_are_4xx_naming_the_problem(
    api: Any, body: dict[str, Any], status_code: int, problem: str
) -> None:
    user = register(api)
    status, err = user.post("/api/v1/packs", body)
    assert status == status_code, err
    assert problem in err["error"]["message"]


@pytest.mark.parametrize("extra", [1024, 2 * 1024 * 1024])
def test_archive_over_the_limit_is_413(api: Any, extra: int) -> None:
    # GIVEN an archive just over 6 MiB (inside the body limit) and one far over it (outside)
    user = register(api)
    encoded = base64.b64encode(b"\0" * (6 * 1024 * 1024 + extra)).decode()
    # WHEN registered THEN 413 saying the limit, and nothing stored
    status, err = user.post("/api/v1/packs", {"ref": "big", "version": "1.0.0", "archive": encoded})
    assert status == 413, err
    assert "limit" in err["error"]["message"]
    assert user.get("/api/v1/packs?ref=big")[1]["total"] == 0


def test_duplicate_ref_is_409(api: Any) -> None:
    # GIVEN a registered pack WHEN the same tenant registers its ref again THEN 409
    user = register(api)
    assert user.post("/api/v1/packs", {"ref": "dup", "version": "1.0.0"})[0] == 201
    status, err = user.post("/api/v1/packs", {"ref": "dup", "version": "2.0.0"})
    assert status == 409
    assert "already exists" in err["error"]["message"]
    # AND another tenant may use the same ref
    assert register(api).post("/api/v1/packs", {"ref": "dup", "version": "1.0.0"})[0] == 201


def test_system_ref_cannot_be_shadowed(api: Any) -> None:
    # GIVEN the core system pack WHEN a tenant registers a pack named core THEN 409 saying why
    load_system_packs()
    status, err = register(api).post("/api/v1/packs", {"ref": "core", "version": "9.0.0"})
    assert status == 409
    assert "system pack" in err["error"]["message"]


def test_reload_adds_updates_removes_actions_and_keeps_old_object(api: Any) -> None:
    # GIVEN a pack at 1.0.0 with actions echo and old
    user = register(api)
    v1 = {"actions/echo.py": ECHO_PY, "actions/echo.yaml": action_yaml("echo"), "actions/old.yaml": action_yaml("old")}
    _, pack = user.post("/api/v1/packs", {"ref": "rl", "version": "1.0.0", "files": v1})
    # WHEN it is reloaded with files where echo changed, old is gone and new appeared
    v2 = {"actions/echo.py": ECHO_PY.replace("1", "2"), "actions/echo.yaml": action_yaml("echo") + "timeout: 9\n",
          "actions/new.yaml": action_yaml("new")}
    status, reloaded = user.post(f"/api/v1/packs/{pack['id']}/reload", {"files": v2})
    # THEN the version is patch-bumped, the action set follows the files, and both objects exist
    assert status == 200, reloaded
    assert reloaded["version"] == "1.0.1"
    assert reloaded["actions"] == ["rl.echo", "rl.new"]
    assert reloaded["changes"] == {"added": ["rl.new"], "updated": ["rl.echo"], "removed": ["rl.old"]}
    assert user.get("/api/v1/actions/rl.echo")[1]["timeout"] == 9
    assert user.get("/api/v1/actions/rl.old")[0] == 404
    prefix = f"tenants/{user.tenant_id}/packs/rl/"
    assert s3_keys(prefix) == [f"{prefix}1.0.0/pack.tar.gz", f"{prefix}1.0.1/pack.tar.gz"]
    assert get_pack_files(f"{prefix}1.0.0/pack.tar.gz")["actions/echo.py"] == ECHO_PY.encode()
    assert audit_actions(user, "pack") == ["pack.reloaded", "pack.registered"]


def test_reload_versions_move_forward(api: Any) -> None:
    # GIVEN a pack at 1.0.0
    user = register(api)
    _, pack = user.post("/api/v1/packs", {"ref": "ver", "version": "1.0.0", "files": {"README.md": "hi"}})
    path = f"/api/v1/packs/{pack['id']}/reload"
    # WHEN reloaded with an older or equal version THEN 409
    status, err = user.post(path, {"version": "1.0.0"})
    assert status == 409
    assert "not greater" in err["error"]["message"]
    # WHEN new files declare 1.1.0 in pack.yaml (T3.26) THEN that version is taken
    assert user.post(path, {"files": {"pack.yaml": "ref: ver\nversion: 1.1.0\n"}})[1]["version"] == "1.1.0"
    # WHEN reloaded with no body THEN the stored files are re-read and the patch bumped
    status, again = user.request("POST", path)
    assert (status, again["version"], again["files"]) == (200, "1.1.1", ["pack.yaml"])
    # WHEN an explicit version is given THEN it is used
    assert user.post(path, {"version": "2.0.0"})[1]["version"] == "2.0.0"


def test_reload_keeps_api_actions_but_refuses_to_orphan_them(api: Any) -> None:
    # GIVEN a pack file used by an action created through the API
    user = register(api)
    files = {"actions/tool.py": ECHO_PY}
    _, pack = user.post("/api/v1/packs", {"ref": "mix", "version": "1.0.0", "files": files})
    status, _ = user.post("/api/v1/actions", {"ref": "mix.tool", "runner_type": "python3", "entry_point": "tool.py"})
    assert status == 201
    path = f"/api/v1/packs/{pack['id']}/reload"
    # WHEN reloaded with the file still there THEN the API action survives
    assert user.post(path, {"files": {**files, "README.md": "x"}})[1]["actions"] == ["mix.tool"]
    # WHEN reloaded without the file THEN 400 names the action, and nothing changed
    status, err = user.post(path, {"files": {"README.md": "x"}})
    assert status == 400
    assert "mix.tool" in err["error"]["message"]
    assert user.get(f"/api/v1/packs/{pack['id']}")[1]["version"] == "1.0.1"


def test_other_tenants_packs_are_404(api: Any) -> None:
    # GIVEN tenant A's pack
    a, b = register(api, "a"), register(api, "b")
    _, pack = a.post("/api/v1/packs", {"ref": "secret", "version": "1.0.0"})
    # WHEN tenant B looks for it, reloads or deletes it THEN it does not exist for B
    assert b.get(f"/api/v1/packs/{pack['id']}")[0] == 404
    assert b.get("/api/v1/packs/secret")[0] == 404
    assert b.post(f"/api/v1/packs/{pack['id']}/reload", {})[0] == 404
    assert b.delete(f"/api/v1/packs/{pack['id']}")[0] == 404
    assert all(p["ref"] != "secret" for p in b.get("/api/v1/packs")[1]["items"])
    # AND it is still there for A
    assert a.get(f"/api/v1/packs/{pack['id']}")[0] == 200


def test_viewer_reads_but_cannot_register(api: Any) -> None:
    admin = register(api)
    viewer = as_role(admin, "viewer")
    status, err = viewer.post("/api/v1/packs", {"ref": "nope", "version": "1.0.0"})
    assert status == 403
    assert "viewer" in err["error"]["message"]
    assert viewer.get("/api/v1/packs")[0] == 200
    assert admin.get("/api/v1/packs?ref=nope")[1]["total"] == 0


def test_system_pack_is_visible_to_every_tenant_and_changed_by_none(api: Any) -> None:
    # GIVEN the system packs loaded, and two tenants with a pack each (T3.11)
    load_system_packs()
    a, b = register(api, "a"), register(api, "b")
    a.post("/api/v1/packs", {"ref": "mine-a", "version": "1.0.0"})
    b.post("/api/v1/packs", {"ref": "mine-b", "version": "1.0.0"})
    for user, own, other in ((a, "mine-a", "mine-b"), (b, "mine-b", "mine-a")):
        # WHEN each lists packs THEN both see core (system) and only their own pack, newest first
        listed = user.get("/api/v1/packs")[1]
        assert [p["ref"] for p in listed["items"]] == [own, "core"]
        assert listed["items"][1]["system"] is True
        assert other not in [p["ref"] for p in listed["items"]]
        core = user.get("/api/v1/packs/core")[1]
        assert core["actions"] == [f"core.{n}" for n in ("ask", "echo", "http", "local", "noop", "sleep")]
        assert user.get("/api/v1/actions/core.echo")[1]["system"] is True
        # AND neither can delete or reload it
        status, err = user.delete(f"/api/v1/packs/{core['id']}")
        assert status == 403
        assert "system pack" in err["error"]["message"]
        assert user.post("/api/v1/packs/core/reload", {})[0] == 403


def test_delete_removes_pack_and_actions_and_audits(api: Any) -> None:
    user = register(api)
    files = {"actions/echo.py": ECHO_PY, "actions/echo.yaml": action_yaml("echo")}
    _, pack = user.post("/api/v1/packs", {"ref": "gone", "version": "1.0.0", "files": files})
    status, body = user.delete(f"/api/v1/packs/{pack['id']}")
    assert (status, body) == (200, {"deleted": pack["id"]})
    assert user.get(f"/api/v1/packs/{pack['id']}")[0] == 404
    assert user.get("/api/v1/actions/gone.echo")[0] == 404
    assert audit_actions(user, "pack") == ["pack.deleted", "pack.registered"]


def test_load_system_packs_is_idempotent_and_picks_up_changes(api: Any, tmp_path: Path) -> None:
    # GIVEN a packs directory with one pack (the api fixture already loaded the repo's core)
    folder = tmp_path / "packs" / "sysdemo"
    shutil.copytree(FIXTURE, folder)
    (folder / "pack.yaml").write_text("ref: sysdemo\nversion: 1.0.0\nlabel: Demo\n")
    # WHEN loaded twice THEN the second load changes nothing
    first = load_system_packs(root=folder.parent)
    second = load_system_packs(root=folder.parent)
    assert [(r.ref, r.version, r.outcome) for r in first] == [("sysdemo", "1.0.0", "registered")]
    assert [(r.ref, r.version, r.outcome) for r in second] == [("sysdemo", "1.0.0", "unchanged")]
    prefix = "tenants/system/packs/sysdemo/"
    assert s3_keys(prefix) == [f"{prefix}1.0.0/pack.tar.gz"]
    # AND the repo's own packs are unchanged on a second load too
    assert {(r.ref, r.outcome) for r in load_system_packs()} == {("core", "unchanged")}
    # WHEN an action file is added without bumping pack.yaml THEN it is reloaded as the next patch
    (folder / "actions" / "extra.yaml").write_text("runner_type: shell\ncode: 'true'\n")
    (third,) = load_system_packs(root=folder.parent)
    assert (third.outcome, third.version) == ("reloaded", "1.0.1")
    assert s3_keys(prefix) == [f"{prefix}1.0.0/pack.tar.gz", f"{prefix}1.0.1/pack.tar.gz"]
    # THEN every tenant sees the new system action
    user = register(api)
    assert user.get("/api/v1/actions/sysdemo.extra")[1]["system"] is True
    assert user.get("/api/v1/packs/sysdemo")[1]["version"] == "1.0.1"
