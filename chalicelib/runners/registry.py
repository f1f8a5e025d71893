"""runner_type -> runner: the one table the worker looks runners up in.

With a runner function configured (ATTUNE_ACTION_RUNNER_FUNCTION, on AWS),
script actions get the remote runner instead of a process runner, so the
worker's code path is the same either way.
"""

from __future__ import annotations

from collections.abc import Callable

from chalicelib.core.errors import ValidationFailed
from chalicelib.runners.base import DEFAULT_GRACE_S, Runner
from chalicelib.runners.container import ContainerRunner
from chalicelib.runners.http import HttpRunner
from chalicelib.runners.node import NodeRunner
from chalicelib.runners.python3 import Python3Runner
from chalicelib.runners.remote import RemoteRunner, runs_remotely
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


def runner_for(
    runner_type: str,
    *,
    grace_s: float = DEFAULT_GRACE_S,
    runner_function: str | None = None,
    pack_key: str | None = None,
) -> Runner:
    """The runner for an action's runner_type; an unknown type is a domain error, not a KeyError.

    `grace_s` is how long an action may take to exit after SIGTERM (timeout
    or cancel) before its group gets SIGKILL. `runner_function` (the
    worker's setting) sends script actions to that Lambda function; they
    then need `pack_key`, the pack archive's storage key, instead of the
    local pack dir. Without it the action runs here, which is also what the
    runner function itself asks for.
    """
    factory = RUNNERS.get(runner_type)
    if factory is None:
        raise ValidationFailed(
            f"no process runner for runner_type {runner_type!r}; this worker runs {', '.join(runner_types())}"
        )
    if runner_function is not None and runs_remotely(runner_type, runner_function):
        return RemoteRunner(runner_function, grace_s=grace_s, pack_key=pack_key)
    return factory(grace_s=grace_s)
