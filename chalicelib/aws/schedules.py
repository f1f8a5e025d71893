"""EventBridge Scheduler schedules the runtime itself creates: one per sensor, invoking the sensor function.

The stack's fixed schedules (timers ticker, relay) are declared in
`infra/template.yaml`; a sensor's schedule exists only while its sensor
does, so it is made here, in the stack's schedule group, with the stack's
scheduler role (`<stack>-scheduler`, which may invoke the sensor function).
ARNs are derived from the caller's identity (one STS call per process), as
`infra/template.yaml` derives names from the stack name. Locally the same
calls go to moto or LocalStack and the local scheduler role fires them.
boto3's errors end here as `ServiceUnavailable`.
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
_identity: dict[str, str] = {}
NOT_FOUND = "ResourceNotFoundException"


@contextmanager
def _scheduler(what: str) -> Iterator[None]:
    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise ServiceUnavailable(f"EventBridge Scheduler: could not {what}: {exc}") from exc


def _caller() -> dict[str, str]:
    """The account and partition this process runs in (the ARNs' parts a name does not give)."""
    with _lock:
        if not _identity:
            with _scheduler("read the caller identity"):
                found = client("sts").get_caller_identity()
            _identity.update(account=str(found["Account"]), partition=str(found["Arn"]).split(":")[1])
        return dict(_identity)


def group() -> str:
    """The stack's schedule group (`ScheduleGroup` in the template is named after the stack)."""
    return settings().stack_name


def function_arn(logical: str) -> str:
    """The ARN of one of the stack's named functions (`sensors` -> `<stack>-sensors`)."""
    who = _caller()
    return (f"arn:{who['partition']}:lambda:{settings().aws_region}:{who['account']}:function:"
            f"{settings().stack_name}-{logical}")


def role_arn() -> str:
    """The role schedules invoke their targets with (`SchedulerRole`: `<stack>-scheduler`)."""
    who = _caller()
    return f"arn:{who['partition']}:iam::{who['account']}:role/{settings().stack_name}-scheduler"


def _is_missing(exc: ClientError) -> bool:
    return bool(exc.response.get("Error", {}).get("Code") == NOT_FOUND)


def put(name: str, *, expression: str, function: str, payload: dict[str, Any], enabled: bool,
        description: str = "") -> None:
    """Create or replace the schedule `name` invoking `function` with `payload` (JSON) as its input.

    `payload` may hold Scheduler's placeholders (`<aws.scheduler.scheduled-time>`).
    A missed invocation is never retried: the next one does the same work.
    """
    spec: dict[str, Any] = {
        "Name": name,
        "GroupName": group(),
        "ScheduleExpression": expression,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "State": "ENABLED" if enabled else "DISABLED",
        "Description": description[:512],
        "Target": {
            "Arn": function_arn(function),
            "RoleArn": role_arn(),
            "Input": json.dumps(payload, separators=(",", ":")),
            "RetryPolicy": {"MaximumEventAgeInSeconds": 60, "MaximumRetryAttempts": 0},
        },
    }
    scheduler = client("scheduler")
    with _scheduler(f"put schedule {name}"):
        try:
            scheduler.update_schedule(**spec)
        except ClientError as exc:
            if not _is_missing(exc):
                raise
            scheduler.create_schedule(**spec)


def delete(name: str) -> bool:
    """Delete the schedule `name`; False when there was none."""
    with _scheduler(f"delete schedule {name}"):
        try:
            client("scheduler").delete_schedule(Name=name, GroupName=group())
        except ClientError as exc:
            if _is_missing(exc):
                return False
            raise
    return True


def get(name: str) -> dict[str, Any] | None:
    """The schedule `name` as Scheduler describes it, or None."""
    with _scheduler(f"read schedule {name}"):
        try:
            found: dict[str, Any] = client("scheduler").get_schedule(Name=name, GroupName=group())
        except ClientError as exc:
            if _is_missing(exc):
                return None
            raise
    return found


def reset() -> None:
    """Forget the cached identity (tests that switch endpoints)."""
    with _lock:
        _identity.clear()
