"""Bodies of the auth and user endpoints."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

from chalicelib.core.auth import Role
from chalicelib.models.base import Contract

USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{2,63}$"
PASSWORD_MAX = 1024
Username = Annotated[str, Field(pattern=USERNAME_PATTERN)]
Password = Annotated[str, Field(min_length=8, max_length=PASSWORD_MAX)]


class Credentials(Contract):
    """`POST /auth/register`: the username and password policy applies here."""

    username: Username
    password: Password


class Login(Contract):
    """`POST /auth/login`: any strings, no policy.

    A login is checked against what is stored, not against today's policy:
    a wrong password of any shape must be the same 401 as any other wrong
    password, or the answer tells a guesser about the policy and turns
    "wrong credentials" into a 400 the client cannot act on. Only the body's
    shape (two strings, nothing else) is a 400.
    """

    username: str
    password: str

    def could_exist(self) -> bool:
        """Whether any stored user could have these credentials.

        Names outside the username policy (say, with a NUL, which PostgreSQL
        text refuses) are never looked up, and passwords no policy admitted
        (over the limit, or not encodable) are never hashed: they are wrong,
        and answered as wrong without touching the database or the hasher.
        """
        if re.fullmatch(USERNAME_PATTERN, self.username) is None or len(self.password) > PASSWORD_MAX:
            return False
        try:
            self.password.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True


class RefreshRequest(Contract):
    """`POST /auth/refresh`."""

    refresh_token: Annotated[str, Field(min_length=1, max_length=4096)]


class NewUser(Contract):
    """`POST /api/v1/users` (admins only)."""

    username: Username
    password: Password
    role: Role = Field(strict=False)
