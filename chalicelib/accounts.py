"""Accounts: registering tenants, logging in, refreshing tokens, and an admin's users.

The auth views only read the request and call one of these; the
transactions, password hashing and token signing happen here. Register,
login and refresh name no tenant yet, so they run in system transactions.
"""

from __future__ import annotations

from typing import Any

from chalicelib.aws.secrets import jwt_signing_key
from chalicelib.config import settings
from chalicelib.core.auth import Role, hash_password, issue_token, verify_password, verify_token
from chalicelib.core.errors import Conflict, NotFound, Unauthorized, Unprocessable
from chalicelib.db import audit, users
from chalicelib.db.pool import Cursor, system_tx
from chalicelib.models.auth import Credentials, Login, NewUser


def token_pair(user_id: int, tenant_id: int, role: Role) -> dict[str, Any]:
    """A new access token and a single-use refresh token (remembered, so reuse can be caught)."""
    cfg = settings()
    key = jwt_signing_key()
    access, _ = issue_token(
        key, user_id=user_id, tenant_id=tenant_id, role=role, token_type="access", ttl_seconds=cfg.access_token_ttl
    )
    refresh_token, claims = issue_token(
        key, user_id=user_id, tenant_id=tenant_id, role=role, token_type="refresh", ttl_seconds=cfg.refresh_token_ttl
    )
    with system_tx() as cur:
        users.remember_refresh(cur, claims.jti, user_id, tenant_id, claims.expires_at)
    return {
        "access_token": access,
        "refresh_token": refresh_token,
        "token_type": "Bearer",
        "expires_in": cfg.access_token_ttl,
    }


def register(body: Credentials) -> dict[str, Any]:
    """Create a new tenant with the caller as its admin; 409 when the name is taken."""
    password_hash = hash_password(body.password)
    with system_tx() as cur:
        if users.username_taken(cur, body.username):
            raise Conflict(f"username '{body.username}' is taken")
        tenant_id = users.create_tenant(cur, body.username)
        user = users.create_user(cur, tenant_id, body.username, password_hash, Role.ADMIN.value)
        audit.record(cur, tenant_id=tenant_id, actor=f"user:{body.username}", action="tenant.registered",
                     entity_type="user", entity_id=user["id"])
    return user


def login(body: Login) -> dict[str, Any]:
    """A token pair for valid credentials; 401 for wrong ones of any shape."""
    user = None
    if body.could_exist():
        with system_tx() as cur:
            user = users.find_for_login(cur, body.username)
    # An unknown user still costs one verification: timing must not tell which part was wrong.
    password = body.password if body.could_exist() else ""
    if not verify_password(user["password_hash"] if user else None, password) or user is None:
        raise Unauthorized("invalid username or password")
    return token_pair(user["id"], user["tenant_id"], Role(user["role"]))


def refresh(refresh_token: str) -> dict[str, Any]:
    """Trade a refresh token (once) for a new pair; a reused one revokes the user's every refresh token."""
    claims = verify_token(jwt_signing_key(), refresh_token, token_type="refresh")
    with system_tx() as cur:
        fresh = users.use_refresh(cur, claims.jti, claims.user_id)
        if not fresh:
            # Committed before the 401 is raised: the revocation must outlive the failed request.
            users.revoke_all_refresh(cur, claims.user_id)
    if not fresh:
        raise Unauthorized("refresh token already used or revoked; log in again")
    with system_tx() as cur:
        row = users.load_principal(cur, claims.user_id, claims.tenant_id)
    if row is None:
        raise Unauthorized("invalid token: the user no longer exists")
    return token_pair(row["id"], row["tenant_id"], Role(row["role"]))


def add_user(cur: Cursor, *, tenant_id: int, actor: str, body: NewUser) -> dict[str, Any]:
    """Add a user with a role to the admin's tenant; user names are unique across tenants (409)."""
    password_hash = hash_password(body.password)
    with system_tx() as sys_cur:
        if users.username_taken(sys_cur, body.username):
            raise Conflict(f"username '{body.username}' is taken")
    user = users.create_user(cur, tenant_id, body.username, password_hash, body.role.value)
    audit.record(cur, tenant_id=tenant_id, actor=actor, action="user.created", entity_type="user",
                 entity_id=user["id"], detail={"username": body.username, "role": body.role.value})
    return user


def remove_user(cur: Cursor, *, tenant_id: int, actor: str, caller_id: int, user_id: int) -> None:
    """Delete a user of the tenant (not oneself: a tenant must keep an admin who can log in)."""
    if user_id == caller_id:
        raise Unprocessable("you cannot delete your own user")
    if not users.USERS.delete(cur, tenant_id, user_id):
        raise NotFound(f"user {user_id} not found")
    audit.record(cur, tenant_id=tenant_id, actor=actor, action="user.deleted", entity_type="user", entity_id=user_id)
