"""Register, login, refresh, and the admin's user management (the logic lives in chalicelib.accounts)."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib import accounts
from chalicelib.api.context import Call, PublicCall, client_address, endpoint, public
from chalicelib.api.params import PAGE, page, path_id
from chalicelib.api.serialize import listing, pick
from chalicelib.core.auth import Permission
from chalicelib.core.errors import NotFound
from chalicelib.db import users
from chalicelib.models.auth import Credentials, Login, NewUser, RefreshRequest
from chalicelib.models.responses import Deleted, TokenPair, User, UserList

bp = Blueprint(__name__)
USER_FIELDS = ("id", "username", "tenant_id", "role", "created")


@bp.route("/auth/register", methods=["POST"])
@public(body=Credentials, status=201, response=User, errors=(409, 429))
def register(call: PublicCall) -> dict[str, Any]:
    """Create a new tenant with the caller as its admin."""
    return pick(accounts.register(call.body, client_address(call.request)), USER_FIELDS)


@bp.route("/auth/login", methods=["POST"])
@public(body=Login, response=TokenPair, errors=(401, 429))
def login(call: PublicCall) -> dict[str, Any]:
    """Exchange username and password for an access and a refresh token."""
    return accounts.login(call.body, client_address(call.request))


@bp.route("/auth/refresh", methods=["POST"])
@public(body=RefreshRequest, response=TokenPair, errors=(401,))
def refresh(call: PublicCall) -> dict[str, Any]:
    """Trade a refresh token (once) for a new pair; a reused one revokes them all."""
    body: RefreshRequest = call.body
    return accounts.refresh(body.refresh_token)


@bp.route("/api/v1/users", methods=["POST"])
@endpoint(Permission.ADMIN, body=NewUser, status=201, response=User, errors=(409,))
def create_user(call: Call) -> dict[str, Any]:
    """Add a user with a role to the admin's tenant."""
    user = accounts.add_user(call.cur, tenant_id=call.principal.tenant_id, actor=call.principal.actor, body=call.body)
    return pick(user, USER_FIELDS)


@bp.route("/api/v1/users", methods=["GET"])
@endpoint(Permission.ADMIN, query=PAGE, response=UserList)
def list_users(call: Call) -> dict[str, Any]:
    """The tenant's users."""
    window = page(call)
    rows, total = users.USERS.list(call.cur, call.principal.tenant_id, limit=window.limit, offset=window.offset)
    return listing([pick(r, USER_FIELDS) for r in rows], total, window.limit, window.offset)


@bp.route("/api/v1/users/{user_id}", methods=["GET"])
@endpoint(Permission.ADMIN, response=User)
def get_user(call: Call, user_id: str) -> dict[str, Any]:
    """One user of the tenant."""
    row = users.USERS.get(call.cur, call.principal.tenant_id, path_id(user_id, "user"))
    if row is None:
        raise NotFound(f"user {user_id} not found")
    return pick(row, USER_FIELDS)


@bp.route("/api/v1/users/{user_id}", methods=["DELETE"])
@endpoint(Permission.ADMIN, response=Deleted, errors=(422,))
def delete_user(call: Call, user_id: str) -> dict[str, Any]:
    """Remove a user (not oneself: a tenant must keep an admin who can log in)."""
    uid = path_id(user_id, "user")
    accounts.remove_user(call.cur, tenant_id=call.principal.tenant_id, actor=call.principal.actor,
                         caller_id=call.principal.user_id, user_id=uid)
    return {"deleted": uid}
