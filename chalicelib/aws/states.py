"""Step Functions: the state machines that run workflows, their executions and task tokens.

State machines are content-addressed: one per distinct compiled definition,
named by its digest, so a reloaded workflow gets a new machine while running
executions finish on the one they started on, and identical definitions
(any tenant's: the ASL carries no tenant data) share one. Every call that
the runtime repeats under at-least-once delivery is idempotent here: a
machine or an execution that already exists is found, a token that was
already answered (or timed out, or whose execution stopped) is not an error.

boto3's errors end here: failures that a redelivery can mend raise
`ServiceUnavailable`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.aws.clients import client
from chalicelib.config import settings
from chalicelib.core.errors import ServiceUnavailable

_lock = threading.Lock()
_machines: dict[str, str] = {}  # digest -> state machine ARN, once known to exist
# A token that can no longer be answered: already answered, timed out, or its execution is over.
GONE_TOKEN_ERRORS = frozenset({"TaskDoesNotExist", "TaskTimedOut", "InvalidToken", "ExecutionDoesNotExist"})
MAX_CAUSE = 32_000  # SendTaskFailure's cause limit is 32,768 characters
MAX_ERROR = 256


@contextmanager
def _sfn(what: str) -> Iterator[None]:
    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise ServiceUnavailable(f"Step Functions: could not {what}: {exc}") from exc


class MachineGone(ServiceUnavailable):
    """The state machine is not there any more (an emulator restarted without it): create it again."""


class DefinitionRefused(Exception):
    """Step Functions refused a compiled definition (a compiler bug, or a limit): retrying cannot help."""


REFUSED_DEFINITION = frozenset({"InvalidDefinition", "ValidationException", "StateMachineLimitExceeded"})


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def machine_name(digest: str) -> str:
    """The state machine of one compiled definition (80 characters at most, as AWS requires)."""
    return f"{settings().stack_name}-wf-{digest[:40]}"


def role_arn() -> str:
    """The role Step Functions runs workflows as (infra's WorkflowStatesRole; a local stand-in under moto)."""
    configured = settings().states_role_arn
    if configured:
        return configured
    return f"arn:aws:iam::123456789012:role/{settings().stack_name}-states"


def _machine_arn(name: str) -> str | None:
    sfn = client("stepfunctions")
    for page in sfn.get_paginator("list_state_machines").paginate():
        for machine in page["stateMachines"]:
            if machine["name"] == name:
                return str(machine["stateMachineArn"])
    return None


def ensure_state_machine(digest: str, definition: str) -> str:
    """The ARN of the machine for `definition`, created when it does not exist yet."""
    found = _machines.get(digest)
    if found is not None:
        return found
    name = machine_name(digest)
    sfn = client("stepfunctions")
    with _sfn(f"create state machine {name}"):
        try:
            arn = str(sfn.create_state_machine(name=name, definition=definition, roleArn=role_arn(),
                                               type="STANDARD")["stateMachineArn"])
        except ClientError as exc:
            if _code(exc) in REFUSED_DEFINITION:
                raise DefinitionRefused(f"Step Functions refused the workflow's state machine: {exc}") from exc
            if _code(exc) != "StateMachineAlreadyExists":
                raise
            arn = _machine_arn(name) or ""
            if not arn:
                raise
    with _lock:
        _machines[digest] = arn
    return arn


def execution_name(tenant_id: int, execution_id: int) -> str:
    """A workflow execution's Step Functions execution: one name, so a redelivered start starts nothing twice."""
    return f"t{tenant_id}-e{execution_id}"


def start_execution(machine_arn: str, tenant_id: int, execution_id: int) -> str:
    """Start the workflow's state machine execution (or find the one a previous delivery started); its ARN."""
    name = execution_name(tenant_id, execution_id)
    sfn = client("stepfunctions")
    with _sfn(f"start {name}"):
        try:
            return str(sfn.start_execution(
                stateMachineArn=machine_arn, name=name,
                input=json.dumps({"tenant_id": tenant_id, "execution_id": execution_id}),
            )["executionArn"])
        except ClientError as exc:
            if _code(exc) == "StateMachineDoesNotExist":
                with _lock:
                    _machines.clear()
                raise MachineGone(f"state machine {machine_arn} does not exist") from exc
            if _code(exc) != "ExecutionAlreadyExists":
                raise
    machine = machine_arn.split(":stateMachine:", 1)
    return f"{machine[0]}:execution:{machine[1]}:{name}"


def send_task_success(token: str, output: dict[str, Any]) -> bool:
    """Answer a waiting task; False when the token is gone (answered, timed out, execution over)."""
    with _sfn("send task success"):
        try:
            client("stepfunctions").send_task_success(taskToken=token, output=json.dumps(output))
        except ClientError as exc:
            if _code(exc) in GONE_TOKEN_ERRORS:
                return False
            raise
    return True


def send_task_failure(token: str, error: str, cause: str) -> bool:
    """Fail a waiting task with `error` (the name ASL Retry/Catch match); False when the token is gone."""
    with _sfn("send task failure"):
        try:
            client("stepfunctions").send_task_failure(taskToken=token, error=error[:MAX_ERROR],
                                                      cause=cause[:MAX_CAUSE])
        except ClientError as exc:
            if _code(exc) in GONE_TOKEN_ERRORS:
                return False
            raise
    return True


def stop_execution(execution_arn: str, cause: str) -> None:
    """Stop a workflow's state machine execution; one already over (or never started) is fine."""
    with _sfn("stop execution"):
        try:
            client("stepfunctions").stop_execution(executionArn=execution_arn, cause=cause[:MAX_CAUSE])
        except ClientError as exc:
            if _code(exc) not in GONE_TOKEN_ERRORS:
                raise


def execution_status(execution_arn: str) -> str | None:
    """RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED; None when Step Functions does not know it."""
    with _sfn("describe execution"):
        try:
            return str(client("stepfunctions").describe_execution(executionArn=execution_arn)["status"])
        except ClientError as exc:
            if _code(exc) in GONE_TOKEN_ERRORS:
                return None
            raise


def forget_machines() -> None:
    """Forget known machines (tests that switch endpoints; an emulator restarted without its state)."""
    with _lock:
        _machines.clear()
