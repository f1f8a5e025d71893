"""Register, login, refresh and user management through the real app (PostgreSQL + moto)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.helpers.api import ApiUser, register

JSON = {"Content-Type": "application/json"}


def _post(api: Any, path: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    resp = api.http.post(path, headers={**JSON, **(headers or {})}, body=json.dumps(body))
    return resp.status_code, json.loads(resp.body)


def test_register_creates_tenant_admin(api: Any) -> None:
    status, body = _post(api, "/auth/register", {"username": "alice", "password": "long-enough-pw"})
    assert status == 201
    assert body["username"] == "alice" and body["role"] == "admin" and body["tenant_id"] > 0
    status, body = _post(api, "/auth/register", {"username": "ALICE", "password": "long-enough-pw"})
    assert status == 409 and "taken" in body["error"]["message"]


def test_login_wrong_password_and_unknown_user_look_the_same(api: Any) -> None:
    _post(api, "/auth/register", {"username": "bob", "password": "long-enough-pw"})
    s1, b1 = _post(api, "/auth/login", {"username": "bob", "password": "wrong-password"})
    s2, b2 = _post(api, "/auth/login", {"username": "nobody", "password": "wrong-password"})
    assert s1 == s2 == 401
    assert b1 == b2


def test_refresh_rotates_and_reuse_revokes(api: Any) -> None:
    _post(api, "/auth/register", {"username": "carol", "password": "long-enough-pw"})
    _, tokens = _post(api, "/auth/login", {"username": "carol", "password": "long-enough-pw"})
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] > 0
    status, fresh = _post(api, "/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert status == 200 and fresh["refresh_token"] != tokens["refresh_token"]
    # WHEN the first refresh token is replayed THEN it fails and the family is revoked
    status, _ = _post(api, "/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert status == 401
    status, _ = _post(api, "/auth/refresh", {"refresh_token": fresh["refresh_token"]})
    assert status == 401
    # An access token is not a refresh token
    status, body = _post(api, "/auth/refresh", {"refresh_token": tokens["access_token"]})
    assert status == 401 and "refresh" in body["error"]["message"]


def test_bad_bodies_are_400_naming_the_problem(api: Any) -> None:
    cases = [
        (b"{not json", "malformed JSON"),
        (b"[1,2]", "JSON object"),
        (b"", "empty"),
        (json.dumps({"username": "ab", "password": "long-enough-pw"}).encode(), "username"),
        (json.dumps({"username": "dave", "password": "short"}).encode(), "password"),
        (json.dumps({"username": "dave", "password": 12345678}).encode(), "password"),
        (json.dumps({"username": "dave", "password": "long-enough-pw", "role": "admin"}).encode(), "role"),
    ]
    for raw, needle in cases:
        resp = api.http.post("/auth/register", headers=JSON, body=raw)
        body = json.loads(resp.body)
        assert resp.status_code == 400, (raw, body)
        assert needle in body["error"]["message"], (raw, body)


def test_oversized_body_is_413(api: Any) -> None:
    big = json.dumps({"username": "erin", "password": "x" * (2 * 1024 * 1024)})
    resp = api.http.post("/auth/register", headers=JSON, body=big)
    assert resp.status_code == 413


def test_admin_adds_users_with_roles_and_only_admins_may(api: Any) -> None:
    admin = register(api, "adm")
    status, user = admin.post(
        "/api/v1/users", {"username": f"{admin.username}-v", "password": "viewer-pass", "role": "viewer"}
    )
    assert status == 201 and user["role"] == "viewer" and user["tenant_id"] == admin.tenant_id
    status, body = admin.post("/api/v1/users", {"username": "x-other", "password": "viewer-pass", "role": "root"})
    assert status == 400 and "role" in body["error"]["message"]
    _, tokens = _post(api, "/auth/login", {"username": f"{admin.username}-v", "password": "viewer-pass"})
    viewer = ApiUser(api, user["username"], tokens["access_token"], admin.tenant_id)
    status, body = viewer.post("/api/v1/users", {"username": "sneaky", "password": "viewer-pass", "role": "admin"})
    assert status == 403 and "viewer" in body["error"]["message"]
    status, listing = admin.get("/api/v1/users")
    assert status == 200 and listing["total"] == 2


def test_deleted_user_token_stops_working_and_demotion_is_immediate(api: Any) -> None:
    admin = register(api, "adm")
    _, user = admin.post(
        "/api/v1/users", {"username": f"{admin.username}-e", "password": "editor-pass", "role": "editor"}
    )
    _, tokens = _post(api, "/auth/login", {"username": user["username"], "password": "editor-pass"})
    editor = ApiUser(api, user["username"], tokens["access_token"], admin.tenant_id)
    assert editor.get("/api/v1/triggers")[0] == 200
    assert admin.delete(f"/api/v1/users/{user['id']}")[0] == 200
    status, body = editor.get("/api/v1/triggers")
    assert status == 401 and "no longer exists" in body["error"]["message"]


def test_missing_or_garbage_token_is_401(api: Any) -> None:
    assert api.http.get("/api/v1/packs").status_code == 401
    for header in ("Bearer", "Basic abc", "Bearer not.a.jwt", "Bearer " + "a" * 5000):
        resp = api.http.get("/api/v1/packs", headers={"Authorization": header})
        assert resp.status_code == 401, header
        assert json.loads(resp.body)["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "application/octet-stream", None]
)
def test_a_json_body_is_accepted_whatever_the_content_type(api: Any, content_type: str | None) -> None:
    # GIVEN a user, and a client that labels its JSON body otherwise (curl -d sends form-urlencoded)
    _post(api, "/auth/register", {"username": "frank", "password": "long-enough-pw"})
    headers = {} if content_type is None else {"Content-Type": content_type}
    creds = json.dumps({"username": "frank", "password": "long-enough-pw"}).encode()
    # WHEN it logs in THEN the body is read as the JSON it is
    resp = api.http.post("/auth/login", headers=headers, body=creds)
    assert resp.status_code == 200, resp.body
    token = json.loads(resp.body)["access_token"]
    # AND an authenticated route with a body takes it too
    resp = api.http.post("/api/v1/triggers", headers={**headers, "Authorization": f"Bearer {token}"},
                         body=json.dumps({"type": "webhook"}).encode())
    assert resp.status_code == 201, resp.body


def test_a_body_that_is_not_json_is_400_whatever_the_content_type(api: Any) -> None:
    # GIVEN a real form body WHEN posted THEN 400 saying it is not JSON (not 415, not 500)
    resp = api.http.post("/auth/login", headers={"Content-Type": "application/x-www-form-urlencoded"},
                         body=b"username=frank&password=x")
    body = json.loads(resp.body)
    assert resp.status_code == 400, body
    assert body["error"]["code"] == "bad_request" and "malformed JSON" in body["error"]["message"]


@pytest.mark.parametrize(
    "password",
    ["short", "", "x" * 2000, "long-but-wrong-password"],
)
def test_wrong_password_of_any_shape_is_401(api: Any, password: str) -> None:
    # GIVEN a user WHEN logging in with a wrong password outside the register policy or inside it
    _post(api, "/auth/register", {"username": "gina", "password": "long-enough-pw"})
    status, body = _post(api, "/auth/login", {"username": "gina", "password": password})
    # THEN the same 401 as any wrong password: the policy is for register, not login
    assert status == 401, body
    assert body["error"]["message"] == "invalid username or password"


def test_a_password_that_is_not_unicode_is_a_400_not_a_login_attempt(api: Any) -> None:
    # GIVEN a body whose password holds a lone surrogate: valid JSON syntax, but no Unicode text
    _post(api, "/auth/register", {"username": "hana", "password": "long-enough-pw"})
    status, body = _post(api, "/auth/login", {"username": "hana", "password": "\ud800not-utf8"})
    # THEN a 400 naming the problem (issue 10), never a 500 and never an attempt on the account
    assert status == 400, body
    assert "lone surrogate" in body["error"]["message"]


@pytest.mark.parametrize("username", ["ab", "", "no spaces allowed", "nul\u0000byte", "x" * 300])
def test_unknown_username_of_any_shape_is_401(api: Any, username: str) -> None:
    status, body = _post(api, "/auth/login", {"username": username, "password": "long-enough-pw"})
    assert status == 401, body
    assert body["error"]["message"] == "invalid username or password"


def test_login_body_of_the_wrong_shape_is_still_400(api: Any) -> None:
    for bad in ({"username": "gina"}, {"username": "gina", "password": 12345678},
                {"username": "gina", "password": "long-enough-pw", "extra": 1}):
        status, body = _post(api, "/auth/login", bad)
        assert status == 400, (bad, body)
