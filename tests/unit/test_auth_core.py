"""Tokens, passwords and role grants: the pure part of authentication."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from chalicelib.core.auth import (
    Permission,
    Role,
    allowed,
    denial_message,
    hash_password,
    issue_token,
    verify_password,
    verify_token,
)
from chalicelib.core.errors import Unauthorized

KEY = b"k" * 64


def _token(**overrides: object) -> str:
    token, _ = issue_token(
        KEY, user_id=7, tenant_id=3, role=Role.EDITOR, token_type="access", ttl_seconds=60, **overrides
    )
    return token


def test_round_trip_keeps_identity() -> None:
    claims = verify_token(KEY, _token(), token_type="access")
    assert (claims.user_id, claims.tenant_id, claims.role) == (7, 3, Role.EDITOR)


def test_expired_token_is_refused() -> None:
    token = _token(now=time.time() - 3600)
    with pytest.raises(Unauthorized, match="expired"):
        verify_token(KEY, token, token_type="access")


def test_refresh_token_is_not_an_access_token() -> None:
    token, _ = issue_token(KEY, user_id=1, tenant_id=1, role=Role.ADMIN, token_type="refresh", ttl_seconds=60)
    with pytest.raises(Unauthorized, match="not an access token"):
        verify_token(KEY, token, token_type="access")


def test_alg_none_is_refused() -> None:
    # GIVEN a token whose header says alg=none and whose claims are otherwise valid
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).rstrip(b"=")
    body = jwt.decode(_token(), KEY, algorithms=["HS256"], options={"verify_signature": False})
    body["tid"] = 999
    payload = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=")
    forged = (header + b"." + payload + b".").decode()
    # THEN it is refused
    with pytest.raises(Unauthorized):
        verify_token(KEY, forged, token_type="access")


def test_other_key_and_other_algorithm_are_refused() -> None:
    body = jwt.decode(_token(), KEY, algorithms=["HS256"])
    with pytest.raises(Unauthorized):
        verify_token(KEY, jwt.encode(body, b"x" * 64, algorithm="HS256"), token_type="access")
    with pytest.raises(Unauthorized):
        verify_token(KEY, jwt.encode(body, KEY, algorithm="HS512"), token_type="access")


def test_tampered_claims_fail_signature() -> None:
    head, payload, sig = _token().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["tid"] = 1
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(Unauthorized):
        verify_token(KEY, f"{head}.{forged_payload}.{sig}", token_type="access")


def test_password_hash_is_argon2id_and_verifies() -> None:
    stored = hash_password("correct-horse")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "correct-horse")
    assert not verify_password(stored, "wrong-horse")
    assert not verify_password(None, "correct-horse")


@pytest.mark.parametrize(
    ("role", "granted"),
    [
        (Role.ADMIN, set(Permission)),
        (Role.EDITOR, {Permission.READ, Permission.EXECUTE, Permission.WRITE}),
        (Role.EXECUTOR, {Permission.READ, Permission.EXECUTE}),
        (Role.VIEWER, {Permission.READ}),
    ],
)
def test_role_grants(role: Role, granted: set[Permission]) -> None:
    assert {p for p in Permission if allowed(role, p)} == granted


def test_denial_names_role_and_needed_roles() -> None:
    message = denial_message(Role.VIEWER, Permission.WRITE)
    assert "viewer" in message and "admin" in message and "editor" in message
