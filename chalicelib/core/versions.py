"""Semantic versions of packs: parse, order, bump.

Pack versions name S3 objects (`.../<ref>/<version>/pack.tar.gz`) and a
reload must move forward, so the ordering has to be the SemVer 2.0 one
(`1.10.0 > 1.9.0`, `1.0.0-rc.1 < 1.0.0`), not string order. The project's
dependencies carry no SemVer library and `packaging` implements PEP 440,
which orders pre-releases differently, hence this small module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

from chalicelib.core.errors import ValidationFailed

_IDENT = r"(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)"
SEMVER_PATTERN = (
    r"^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})"
    rf"(?:-({_IDENT}(?:\.{_IDENT})*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
_SEMVER = re.compile(SEMVER_PATTERN)


@total_ordering
@dataclass(frozen=True)
class Version:
    """A parsed SemVer 2.0 version; build metadata is kept but never ordered."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: str = ""

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + self.build
        return text

    def _key(self) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
        # A release sorts after all its pre-releases; numeric identifiers sort
        # numerically and before alphanumeric ones (SemVer 2.0, rule 11).
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def parse_version(text: str) -> Version:
    """Parse `MAJOR.MINOR.PATCH[-pre][+build]`; anything else is a 400 naming the value."""
    match = _SEMVER.match(text)
    if match is None:
        raise ValidationFailed(
            f"version {text!r} is not a semantic version (MAJOR.MINOR.PATCH, e.g. '1.0.0')"
        )
    major, minor, patch, pre, build = match.groups()
    return Version(int(major), int(minor), int(patch), tuple(pre.split(".")) if pre else (), build or "")


def bump_patch(text: str) -> str:
    """The next patch release: `1.2.3` -> `1.2.4`; a pre-release `1.3.0-rc.1` -> `1.3.0`."""
    current = parse_version(text)
    if current.prerelease:
        return f"{current.major}.{current.minor}.{current.patch}"
    return f"{current.major}.{current.minor}.{current.patch + 1}"


def is_newer(candidate: str, current: str) -> bool:
    """Whether `candidate` orders strictly after `current`."""
    return parse_version(candidate) > parse_version(current)
