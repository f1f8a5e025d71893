"""Tenants, users and refresh tokens."""

from __future__ import annotations

from typing import Any

from chalicelib.db.crud import Table
from chalicelib.db.pool import Cursor

USERS = Table("app_user", ("id", "tenant_id", "username", "role", "created", "updated"), frozenset({"role"}))

LOAD_PRINCIPAL = """
SELECT id, tenant_id, username, role FROM attune.app_user
WHERE id = %(id)s AND tenant_id = %(tenant_id)s
"""
INSERT_TENANT = "INSERT INTO attune.tenant (name) VALUES (%(name)s) RETURNING id"
INSERT_USER = """
INSERT INTO attune.app_user (tenant_id, username, password_hash, role)
VALUES (%(tenant_id)s, %(username)s, %(password_hash)s, %(role)s)
RETURNING id, tenant_id, username, role, created, updated
"""
USERNAME_TAKEN = "SELECT 1 FROM attune.app_user WHERE lower(username) = lower(%(username)s)"
FIND_FOR_LOGIN = """
SELECT id, tenant_id, username, role, password_hash FROM attune.app_user
WHERE lower(username) = lower(%(username)s)
"""
INSERT_REFRESH = """
INSERT INTO attune.refresh_token (jti, user_id, tenant_id, expires_at)
VALUES (%(jti)s, %(user_id)s, %(tenant_id)s, to_timestamp(%(expires_at)s))
"""
USE_REFRESH = """
UPDATE attune.refresh_token SET used_at = now()
WHERE jti = %(jti)s AND user_id = %(user_id)s AND used_at IS NULL AND expires_at > now()
RETURNING user_id
"""
REVOKE_USER_REFRESH = "DELETE FROM attune.refresh_token WHERE user_id = %(user_id)s"
PURGE_EXPIRED_REFRESH = "DELETE FROM attune.refresh_token WHERE user_id = %(user_id)s AND expires_at < now()"


def load_principal(cur: Cursor, user_id: int, tenant_id: int) -> dict[str, Any] | None:
    """The user a token names, with the role as the database has it now (demotions apply at once)."""
    cur.execute(LOAD_PRINCIPAL, {"id": user_id, "tenant_id": tenant_id})
    return cur.fetchone()


def username_taken(cur: Cursor, username: str) -> bool:
    """Usernames are unique across tenants (login names no tenant)."""
    cur.execute(USERNAME_TAKEN, {"username": username})
    return cur.fetchone() is not None


def create_tenant(cur: Cursor, name: str) -> int:
    """A new tenant; its id."""
    cur.execute(INSERT_TENANT, {"name": name})
    row = cur.fetchone()
    assert row is not None
    return int(row["id"])


def create_user(cur: Cursor, tenant_id: int, username: str, password_hash: str, role: str) -> dict[str, Any]:
    """Insert a user; the public row."""
    cur.execute(
        INSERT_USER,
        {"tenant_id": tenant_id, "username": username, "password_hash": password_hash, "role": role},
    )
    row = cur.fetchone()
    assert row is not None
    return row


def find_for_login(cur: Cursor, username: str) -> dict[str, Any] | None:
    """The user with its password hash (system transaction: no tenant is known yet)."""
    cur.execute(FIND_FOR_LOGIN, {"username": username})
    return cur.fetchone()


def remember_refresh(cur: Cursor, jti: str, user_id: int, tenant_id: int, expires_at: int) -> None:
    """Store an issued refresh token so it can be used once."""
    cur.execute(PURGE_EXPIRED_REFRESH, {"user_id": user_id})
    cur.execute(INSERT_REFRESH, {"jti": jti, "user_id": user_id, "tenant_id": tenant_id, "expires_at": expires_at})


def use_refresh(cur: Cursor, jti: str, user_id: int) -> bool:
    """Consume a refresh token; False when unknown, used or expired."""
    cur.execute(USE_REFRESH, {"jti": jti, "user_id": user_id})
    return cur.fetchone() is not None


def revoke_all_refresh(cur: Cursor, user_id: int) -> None:
    """On reuse of a consumed refresh token, assume theft and revoke the whole family."""
    cur.execute(REVOKE_USER_REFRESH, {"user_id": user_id})
