"""Bodies of the auth and user endpoints."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from chalicelib.core.auth import Role
from chalicelib.models.base import Contract

Username = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{2,63}$")]
Password = Annotated[str, Field(min_length=8, max_length=1024)]


class Credentials(Contract):
    """`POST /auth/register` and `POST /auth/login`."""

    username: Username
    password: Password


class RefreshRequest(Contract):
    """`POST /auth/refresh`."""

    refresh_token: Annotated[str, Field(min_length=1, max_length=4096)]


class NewUser(Contract):
    """`POST /api/v1/users` (admins only)."""

    username: Username
    password: Password
    role: Role = Field(strict=False)
