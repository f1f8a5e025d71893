"""Register, login, refresh, and the admin's user management."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.api.context import Call, PublicCall, endpoint, public
from chalicelib.api.params import page, path_id
from chalicelib.api.serialize import listing, pick
from chalicelib.aws.secrets import jwt_signing_key
from chalicelib.config import settings
from chalicelib.core.auth import (
    Permission,
    Role,
    hash_password,
    issue_token,
    verify_password,
    verify_token,
)
from chalicelib.core.errors import Conflict, NotFound, Unauthorized, Unprocessable
from chalicelib.db import audit, users
from chalicelib.db.pool import system_tx
from chalicelib.models.auth import Credentials, Login, NewUser, RefreshRequest

bp = Blueprint(__name__)
USER_FIELDS = ("id", "username", "tenant_id", "role", "created")


def _token_pair(user_id: int, tenant_id: int, role: Role) -> dict[str, Any]:
    cfg = settings()
    key = jwt_signing_key()
    access, _ = issue_token(
        key, user_id=user_id, tenant_id=tenant_id, role=role, token_type="access", ttl_seconds=cfg.access_token_ttl
    )
    refresh, claims = issue_token(
        key, user_id=user_id, tenant_id=tenant_id, role=role, token_type="refresh", ttl_seconds=cfg.refresh_token_ttl
    )
    with system_tx() as cur:
        users.remember_refresh(cur, claims.jti, user_id, tenant_id, claims.expires_at)
    return {
        "access_token": access,
        "refresh_token": refresh,
        "token_type": "Bearer",
        "expires_in": cfg.access_token_ttl,
    }


@bp.route("/auth/register", methods=["POST"])
@public(body=Credentials, status=201)
def register(call: PublicCall) -> dict[str, Any]:
    """Create a new tenant with the caller as its admin."""
    body: Credentials = call.body
    password_hash = hash_password(body.password)
    with system_tx() as cur:
        if users.username_taken(cur, body.username):
            raise Conflict(f"username '{body.username}' is taken")
        tenant_id = users.create_tenant(cur, body.username)
        user = users.create_user(cur, tenant_id, body.username, password_hash, Role.ADMIN.value)
        audit.record(
            cur,
            tenant_id=tenant_id,
            actor=f"user:{body.username}",
            action="tenant.registered",
            entity_type="user",
            entity_id=user["id"],
        )
    return pick(user, USER_FIELDS)


@bp.route("/auth/login", methods=["POST"])
@public(body=Login)
def login(call: PublicCall) -> dict[str, Any]:
    """Exchange username and password for an access and a refresh token."""
    body: Login = call.body
    user = None
    if body.could_exist():
        with system_tx() as cur:
            user = users.find_for_login(cur, body.username)
    # An unknown user still costs one verification: timing must not tell which part was wrong.
    password = body.password if body.could_exist() else ""
    if not verify_password(user["password_hash"] if user else None, password) or user is None:
        raise Unauthorized("invalid username or password")
    return _token_pair(user["id"], user["tenant_id"], Role(user["role"]))


@bp.route("/auth/refresh", methods=["POST"])
@public(body=RefreshRequest)
def refresh(call: PublicCall) -> dict[str, Any]:
    """Trade a refresh token (once) for a new pair; a reused one revokes them all."""
    body: RefreshRequest = call.body
    claims = verify_token(jwt_signing_key(), body.refresh_token, token_type="refresh")
    with system_tx() as cur:
        fresh = users.use_refresh(cur, claims.jti, claims.user_id)
        if not fresh:
            # Committed before the 401 is raised: the revocation must outlive the failed request.
            users.revoke_all_refresh(cur, claims.user_id)
    if not fresh:
        raise Unauthorized("refresh token already used or revoked; log in again")
    with system_tx() as cur:
        cur.execute(users.LOAD_PRINCIPAL, {"id": claims.user_id, "tenant_id": claims.tenant_id})
        row = cur.fetchone()
    if row is None:
        raise Unauthorized("invalid token: the user no longer exists")
    return _token_pair(row["id"], row["tenant_id"], Role(row["role"]))


@bp.route("/api/v1/users", methods=["POST"])
@endpoint(Permission.ADMIN, body=NewUser, status=201)
def create_user(call: Call) -> dict[str, Any]:
    """Add a user with a role to the admin's tenant."""
    body: NewUser = call.body
    password_hash = hash_password(body.password)
    with system_tx() as sys_cur:
        if users.username_taken(sys_cur, body.username):
            raise Conflict(f"username '{body.username}' is taken")
    user = users.create_user(call.cur, call.principal.tenant_id, body.username, password_hash, body.role.value)
    audit.record(
        call.cur,
        tenant_id=call.principal.tenant_id,
        actor=call.principal.actor,
        action="user.created",
        entity_type="user",
        entity_id=user["id"],
        detail={"username": body.username, "role": body.role.value},
    )
    return pick(user, USER_FIELDS)


@bp.route("/api/v1/users", methods=["GET"])
@endpoint(Permission.ADMIN)
def list_users(call: Call) -> dict[str, Any]:
    """The tenant's users."""
    window = page(call)
    rows, total = users.USERS.list(call.cur, call.principal.tenant_id, limit=window.limit, offset=window.offset)
    return listing([pick(r, USER_FIELDS) for r in rows], total, window.limit, window.offset)


@bp.route("/api/v1/users/{user_id}", methods=["GET"])
@endpoint(Permission.ADMIN)
def get_user(call: Call, user_id: str) -> dict[str, Any]:
    """One user of the tenant."""
    row = users.USERS.get(call.cur, call.principal.tenant_id, path_id(user_id, "user"))
    if row is None:
        raise NotFound(f"user {user_id} not found")
    return pick(row, USER_FIELDS)


@bp.route("/api/v1/users/{user_id}", methods=["DELETE"])
@endpoint(Permission.ADMIN)
def delete_user(call: Call, user_id: str) -> dict[str, Any]:
    """Remove a user (not oneself: a tenant must keep an admin who can log in)."""
    uid = path_id(user_id, "user")
    if uid == call.principal.user_id:
        raise Unprocessable("you cannot delete your own user")
    if not users.USERS.delete(call.cur, call.principal.tenant_id, uid):
        raise NotFound(f"user {user_id} not found")
    audit.record(
        call.cur,
        tenant_id=call.principal.tenant_id,
        actor=call.principal.actor,
        action="user.deleted",
        entity_type="user",
        entity_id=uid,
    )
    return {"deleted": uid}
