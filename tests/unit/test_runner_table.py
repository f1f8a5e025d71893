"""One table of runner types (core.runners) serves the models, the database, dispatch and the worker."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest

from chalicelib.core.runners import RUNNER_TYPES, RUNNERS, SCRIPT_RUNNERS, ActionSpec
from chalicelib.executions.lifecycle import DISPATCH
from chalicelib.models.packs import RunnerType

SCHEMA = Path(__file__).parents[2] / "chalicelib" / "db" / "schema.sql"


def test_the_model_literal_lists_exactly_the_table() -> None:
    assert get_args(RunnerType) == RUNNER_TYPES


def test_the_database_check_lists_exactly_the_table() -> None:
    # GIVEN the declared schema's CHECK on attune.action.runner_type
    found = re.search(r"runner_type text NOT NULL\s+CHECK \(runner_type IN \(([^)]*)\)\)", SCHEMA.read_text())
    assert found, "the action table's runner_type CHECK was not found"
    # THEN it admits exactly the runner types of the table
    assert tuple(v.strip().strip("'") for v in found.group(1).split(",")) == RUNNER_TYPES


def test_every_runner_path_has_a_dispatcher() -> None:
    assert {kind.path for kind in RUNNERS.values()} <= set(DISPATCH)


def test_script_runners_are_those_that_need_code() -> None:
    assert frozenset({"python3", "shell", "node"}) == SCRIPT_RUNNERS


@pytest.mark.parametrize(
    ("spec", "has_file", "problem"),
    [
        (ActionSpec("p.a", "python3", code="print(1)"), False, None),
        (ActionSpec("p.a", "shell", entry_point="x.sh"), True, None),
        (ActionSpec("p.a", "shell", entry_point="x.sh"), False, "no inline code and no stored pack file"),
        (ActionSpec("p.a", "python3"), True, "no inline code and no stored pack file"),
        # http and container run no pack file: neither code nor a file is asked of them
        (ActionSpec("p.a", "http", http_config={"url": "http://x"}), False, None),
        (ActionSpec("p.a", "http"), False, "has no http_config"),
        (ActionSpec("p.a", "container", image="alpine:3"), False, None),
        (ActionSpec("p.a", "container"), False, "has no image"),
        (ActionSpec("p.a", "cobol"), False, "not known"),
    ],
)
def test_what_each_runner_needs(spec: ActionSpec, has_file: bool, problem: str | None) -> None:
    found = spec.missing(has_pack_file=has_file)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_the_spec_reads_an_execution_row() -> None:
    row = {"action_ref": "p.a", "runner_type": "http", "entry_point": None, "code": None, "timeout": 30,
           "http_config": {"url": "http://x", "method": "GET"}, "image": None, "retry": {"max_attempts": 2}}
    spec = ActionSpec.from_row(row, secrets=("s3cr3t",))
    assert spec.timeout_s == 30.0 and spec.http_config == {"url": "http://x", "method": "GET"}
    assert spec.retry == {"max_attempts": 2} and spec.secrets == ("s3cr3t",)
