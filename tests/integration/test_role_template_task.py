"""The role template runs one-shot tasks too (the supervisor's system pack load): exit code and output come back."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from chalicelib.local.role_template import REPO_ROOT, RoleTemplate, role_env


@pytest.fixture(scope="module")
def template() -> Iterator[RoleTemplate]:
    started = RoleTemplate(role_env(os.environ), REPO_ROOT)
    try:
        assert started.wait_ready(120), "the role template did not become ready"
        yield started
    finally:
        started.stop()


def _run(template: RoleTemplate, call: str | None, role: str = "task") -> tuple[int, str]:
    task = template.spawn(role, role_env(os.environ), REPO_ROOT, call=call)
    assert task.stdout is not None
    output = task.stdout.read().decode()
    task.stdout.close()
    return task.wait(30), output


def test_a_task_that_returns_exits_0(template: RoleTemplate) -> None:
    # GIVEN a function that returns (its value is of no interest) WHEN the template runs it as a task
    code, output = _run(template, "platform:python_version")
    # THEN it ends with exit code 0 and says nothing
    assert (code, output) == (0, "")


def test_a_task_that_raises_exits_1_and_its_log_says_why(template: RoleTemplate) -> None:
    # GIVEN a function that raises (json.loads needs an argument)
    code, output = _run(template, "json:loads")
    # THEN the supervisor sees exit code 1 and the traceback on the task's output
    assert code == 1
    assert "json:loads failed" in output and "TypeError" in output


def test_a_role_still_starts_as_before(template: RoleTemplate) -> None:
    # GIVEN no call WHEN a request names an unknown role THEN it is run as a role (and fails as one), not as a task
    code, output = _run(template, None, role="no-such-role")
    assert code != 0 and "no-such-role" in output
