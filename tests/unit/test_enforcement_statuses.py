"""Enforcement statuses: one set (core.status.ENFORCEMENT) for the API filter and the database CHECK."""

from __future__ import annotations

import re
from pathlib import Path

from chalicelib.core import status

SCHEMA = Path(__file__).parents[2] / "chalicelib" / "db" / "schema.sql"


def test_the_database_admits_exactly_the_enforcement_statuses() -> None:
    table = SCHEMA.read_text().split("CREATE TABLE attune.enforcement", 1)[1].split(");", 1)[0]
    found = re.search(r"status text NOT NULL CHECK \(status IN \(([^)]*)\)\)", table, re.S)
    assert found, "the enforcement status CHECK was not found"
    assert {v.strip().strip("'") for v in found.group(1).split(",")} == status.ENFORCEMENT


def test_an_enforcement_can_end_in_every_final_execution_status() -> None:
    assert status.FINAL <= status.ENFORCEMENT and {"created", "scheduled"} <= status.ENFORCEMENT
