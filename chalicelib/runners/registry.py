"""runner_type -> runner: the one table the worker looks runners up in."""

from __future__ import annotations

from collections.abc import Callable

from chalicelib.core.errors import ValidationFailed
from chalicelib.runners.base import DEFAULT_GRACE_S, Runner
from chalicelib.runners.container import ContainerRunner
from chalicelib.runners.http import HttpRunner
from chalicelib.runners.node import NodeRunner
from chalicelib.runners.python3 import Python3Runner
from chalicelib.runners.shell import ShellRunner

RUNNERS: dict[str, Callable[..., Runner]] = {
    "container": ContainerRunner,
    "http": HttpRunner,
    "node": NodeRunner,
    "python3": Python3Runner,
    "shell": ShellRunner,
}


def runner_types() -> list[str]:
    """The runner types this worker executes as processes."""
    return sorted(RUNNERS)


def runner_for(runner_type: str, *, grace_s: float = DEFAULT_GRACE_S) -> Runner:
    """The runner for an action's runner_type; an unknown type is a domain error, not a KeyError.

    `grace_s` is how long an action may take to exit after SIGTERM (timeout
    or cancel) before its group gets SIGKILL.
    """
    factory = RUNNERS.get(runner_type)
    if factory is None:
        raise ValidationFailed(
            f"no process runner for runner_type {runner_type!r}; this worker runs {', '.join(runner_types())}"
        )
    return factory(grace_s=grace_s)
