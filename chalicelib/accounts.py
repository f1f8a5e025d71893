"""Accounts: registering tenants, logging in, refreshing tokens, and an admin's users.

The auth views only read the request and call one of these; the
transactions, password hashing and token signing happen here. Register,
login and refresh name no tenant yet, so they run in system transactions.

Logins and registrations are what a guesser or a flood aims at, and each
costs an Argon2 hash (64 MiB, a third of a second of CPU). So they are
rate-limited per client address and per user name, a user name that keeps
failing must wait a little longer after each failure (capped, and reset by
a success, so the real user is never locked out for long), and every hash
in the process waits for one of a few slots, answering 503 when none frees
up soon: memory stays bounded whatever the load.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from chalicelib.aws.secrets import jwt_signing_key
from chalicelib.config import settings
from chalicelib.core.auth import Role, hash_password, issue_token, verify_password, verify_token
from chalicelib.core.errors import Conflict, NotFound, Unauthorized, Unprocessable
from chalicelib.core.ratelimit import Overloaded, RateLimited, retry_after_header
from chalicelib.db import audit, ratelimits, users
from chalicelib.db.pool import Cursor, system_tx
from chalicelib.models.auth import Credentials, Login, NewUser


@functools.cache
def _hash_slots(size: int) -> threading.BoundedSemaphore:
    """The process's hash slots (one semaphore per configured size, so a changed setting takes effect)."""
    return threading.BoundedSemaphore(size)


@contextmanager
def _hash_slot() -> Iterator[None]:
    """Hold one of the process's password-hash slots; 503 when none frees up within the configured wait."""
    cfg = settings().limits
    slots = _hash_slots(cfg.hash_concurrency)
    if not slots.acquire(timeout=cfg.hash_wait_s):
        raise Overloaded(f"too many password checks at once (at most {cfg.hash_concurrency} per server); "
                         "retry shortly")
    try:
        yield
    finally:
        slots.release()


def _auth_buckets(client: str | None, username: str | None) -> list[ratelimits.Bucket]:
    """The address's bucket first, so an address over its limit spends nothing of the name's."""
    limit = settings().limits.auth
    buckets = []
    if client:
        buckets.append(ratelimits.Bucket(f"auth-addr:{client}", limit,
                                         "too many login or register attempts from this address"))
    if username:
        buckets.append(ratelimits.Bucket(f"auth-user:{username}", limit,
                                         "too many login or register attempts for this user name"))
    return buckets


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


def register(body: Credentials, client: str | None = None) -> dict[str, Any]:
    """Create a new tenant with the caller as its admin; 409 when the name is taken, 429 when too often."""
    ratelimits.admit(_auth_buckets(client, body.username.lower()))
    with _hash_slot():
        password_hash = hash_password(body.password)
    with system_tx() as cur:
        if users.username_taken(cur, body.username):
            raise Conflict(f"username '{body.username}' is taken")
        tenant_id = users.create_tenant(cur, body.username)
        user = users.create_user(cur, tenant_id, body.username, password_hash, Role.ADMIN.value)
        audit.record(cur, tenant_id=tenant_id, actor=f"user:{body.username}", action="tenant.registered",
                     entity_type="user", entity_id=user["id"])
    return user


def login(body: Login, client: str | None = None) -> dict[str, Any]:
    """A token pair for valid credentials; 401 for wrong ones of any shape; 429 when too often or failing."""
    backoff = settings().limits.login_backoff
    # Names no user can have get no bucket and no back-off of their own: nothing to guess there.
    name = body.username.lower() if body.could_exist() else None
    ratelimits.admit(_auth_buckets(client, name))
    if name is not None:
        wait_s = ratelimits.login_wait_s(name, backoff)
        if wait_s > 0:
            raise RateLimited(f"too many failed logins for this user name; retry in {retry_after_header(wait_s)} s",
                              retry_after_s=wait_s)
    user = None
    if name is not None:
        with system_tx() as cur:
            user = users.find_for_login(cur, body.username)
    # An unknown user still costs one verification: timing must not tell which part was wrong.
    password = body.password if name is not None else ""
    with _hash_slot():
        verified = verify_password(user["password_hash"] if user else None, password)
    if not verified or user is None:
        if name is not None:  # known or not, alike: the back-off must not tell either
            ratelimits.record_login_failure(name, backoff)
        raise Unauthorized("invalid username or password")
    ratelimits.clear_login_failures(body.username.lower())
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
    with _hash_slot():
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
