"""Roles, permissions, passwords and tokens: the pure part of authentication.

Tokens are HS256 JWTs verified against an explicit algorithm allow-list (so
`alg=none` and key-confusion tricks fail), with expiry, issuer and a token
`typ` so a refresh token is never accepted as an access token. The signing
key is passed in: it lives in Secrets Manager, never in the code.
"""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from chalicelib.core.errors import Unauthorized

ALGORITHMS = ["HS256"]
ISSUER = "attune"
_hasher = PasswordHasher()  # Argon2id, memory-hard (64 MiB, t=3) by default


@functools.cache
def _dummy_hash() -> str:
    """A real hash to verify against when the user does not exist, so that the time a failed login takes
    does not reveal whether the username exists.

    Made on first use, not at import: an Argon2 hash (64 MiB, t=3) at import cost every cold start of every
    function importing this module (API, WebSocket handlers, worker) hundreds of milliseconds.
    """
    return _hasher.hash("attune-timing-equaliser")


class Role(StrEnum):
    """The four roles; each includes the permissions of those below it."""

    ADMIN = "admin"
    EDITOR = "editor"
    EXECUTOR = "executor"
    VIEWER = "viewer"


class Permission(StrEnum):
    """What an endpoint needs."""

    READ = "read"
    EXECUTE = "execute"
    WRITE = "write"
    ADMIN = "admin"


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.EDITOR: frozenset({Permission.READ, Permission.EXECUTE, Permission.WRITE}),
    Role.EXECUTOR: frozenset({Permission.READ, Permission.EXECUTE}),
    Role.VIEWER: frozenset({Permission.READ}),
}

DENIAL: dict[Permission, str] = {
    Permission.READ: "reading resources",
    Permission.EXECUTE: "running actions and answering inquiries",
    Permission.WRITE: "creating, changing or deleting resources",
    Permission.ADMIN: "managing users",
}


def allowed(role: Role, permission: Permission) -> bool:
    """Whether `role` grants `permission`."""
    return permission in GRANTS[role]


def denial_message(role: Role, permission: Permission) -> str:
    """The 403 message: says which role is needed for what."""
    needed = sorted(r.value for r, perms in GRANTS.items() if permission in perms)
    return f"role '{role.value}' does not allow {DENIAL[permission]}; requires one of: {', '.join(needed)}"


def hash_password(password: str) -> str:
    """Argon2id hash for storage."""
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Constant-work check; a missing user still costs one verification."""
    try:
        return _hasher.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class Claims:
    """What a verified token says."""

    user_id: int
    tenant_id: int
    role: Role
    token_type: str
    jti: str
    expires_at: int


def issue_token(
    key: bytes,
    *,
    user_id: int,
    tenant_id: int,
    role: Role,
    token_type: str,
    ttl_seconds: int,
    now: float | None = None,
) -> tuple[str, Claims]:
    """Sign a token of `token_type` ('access' or 'refresh')."""
    issued = int(now if now is not None else time.time())
    claims = Claims(
        user_id=user_id,
        tenant_id=tenant_id,
        role=role,
        token_type=token_type,
        jti=str(uuid.uuid4()),
        expires_at=issued + ttl_seconds,
    )
    payload: dict[str, Any] = {
        "iss": ISSUER,
        "sub": str(user_id),
        "tid": tenant_id,
        "role": role.value,
        "typ": token_type,
        "jti": claims.jti,
        "iat": issued,
        "exp": claims.expires_at,
    }
    return jwt.encode(payload, key, algorithm=ALGORITHMS[0]), claims


def verify_token(key: bytes, token: str, *, token_type: str) -> Claims:
    """Verify signature, algorithm, expiry, issuer and type; any failure is a 401."""
    try:
        payload = jwt.decode(
            token,
            key,
            algorithms=ALGORITHMS,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "iss", "jti"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("token expired") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"invalid token: {exc}") from exc
    if payload.get("typ") != token_type:
        raise Unauthorized(f"invalid token: not an {token_type} token")
    try:
        return Claims(
            user_id=int(payload["sub"]),
            tenant_id=int(payload["tid"]),
            role=Role(payload["role"]),
            token_type=token_type,
            jti=str(payload["jti"]),
            expires_at=int(payload["exp"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise Unauthorized("invalid token: malformed claims") from exc


def issue_action_token(key: bytes, *, tenant_id: int, execution_id: int, ttl_seconds: int) -> str:
    """A token for one running execution, so its action can use the tenant's datastore.

    It is accepted only by the datastore endpoints and only while the execution
    is running (the API checks), whatever its expiry says.
    """
    issued = int(time.time())
    payload: dict[str, Any] = {
        "iss": ISSUER,
        "sub": f"execution:{execution_id}",
        "tid": tenant_id,
        "xid": execution_id,
        "typ": "action",
        "jti": str(uuid.uuid4()),
        "iat": issued,
        "exp": issued + ttl_seconds,
    }
    return jwt.encode(payload, key, algorithm=ALGORITHMS[0])


@dataclass(frozen=True)
class ActionClaims:
    """What a verified action token says."""

    tenant_id: int
    execution_id: int


def verify_action_token(key: bytes, token: str) -> ActionClaims:
    """Verify an action token (signature, algorithm, expiry, issuer, type)."""
    try:
        payload = jwt.decode(
            token, key, algorithms=ALGORITHMS, issuer=ISSUER, options={"require": ["exp", "iat", "sub", "iss"]}
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("token expired") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"invalid token: {exc}") from exc
    if payload.get("typ") != "action":
        raise Unauthorized("invalid token: not an action token")
    try:
        return ActionClaims(tenant_id=int(payload["tid"]), execution_id=int(payload["xid"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise Unauthorized("invalid token: malformed claims") from exc
