"""Sensor polls on AWS: the poll runs in ActionRunnerFunction, while the sensor function keeps the database work.

A sensor's class is tenant code, exactly like an action's, and the sensor
function's role reads the database, the pack bucket and the queues; Lambda
cannot run bubblewrap, so the code must not run there. When the sensor
function is told a runner function (ATTUNE_ACTION_RUNNER_FUNCTION, the same
variable and the same function as the worker's), `service.poll_once` still
takes the lease, records the result and emits the events, but the poll
itself is this module: the function is sent what the poll needs and nothing
of the platform's (`SensorPollInvocation`: the class, its file, a presigned
URL of the pack archive, the state, the trigger parameters, the timeout) and
answers a `PollResult` (`SensorPollReply`), which is checked before anything
of it is recorded, since it was written beside the tenant's code.

Packs with a non-empty requirements.txt are refused before the invocation,
as for actions: the virtualenv would be built on the sensor function's disk.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from chalicelib.aws import lambdas, storage
from chalicelib.core.errors import AttuneError
from chalicelib.models.base import Contract
from chalicelib.runners.remote import PACK_URL_TTL_S, dependency_refusal
from chalicelib.sensors.runner import MAX_PAYLOADS, PollResult

log = logging.getLogger(__name__)

# What tells the runner function a poll from an action (`RunnerInvocation` has no `kind`).
POLL_KIND: Literal["sensor_poll"] = "sensor_poll"


class SensorPollInvocation(Contract):
    """What the sensor function sends the runner function: one poll, nothing of the platform's."""

    kind: Literal["sensor_poll"]
    sensor_id: int = Field(ge=1)
    entry_point: str
    class_name: str
    pack_url: str
    state: Any
    parameters: dict[str, Any]
    timeout_s: float = Field(gt=0)


class SensorPollReply(Contract):
    """What the runner function answers: a `PollResult` as a dict (`dataclasses.asdict`)."""

    status: Literal["succeeded", "failed", "timed_out"]
    payloads: list[Any] = Field(max_length=MAX_PAYLOADS)
    state: Any
    error: str | None
    duration_s: float = Field(ge=0)


@dataclass(frozen=True)
class RemotePoll:
    """One poll to send: the sensor's row, reduced to what its code needs."""

    sensor_id: int
    entry_point: str
    class_name: str
    state: Any
    parameters: dict[str, Any]
    timeout_s: float


def build_payload(poll: RemotePoll, pack_url: str) -> dict[str, Any]:
    """The invocation payload, checked against the contract the runner checks it with."""
    invocation = SensorPollInvocation(
        kind=POLL_KIND, sensor_id=poll.sensor_id, entry_point=poll.entry_point, class_name=poll.class_name,
        pack_url=pack_url, state=poll.state, parameters=dict(poll.parameters), timeout_s=float(poll.timeout_s),
    )
    return invocation.model_dump(mode="json")


def to_result(reply: Any) -> PollResult:
    """The runner's answer as a PollResult; a crash the Lambda reported, or an unreadable answer, is a failure."""
    try:
        found = SensorPollReply.model_validate(reply)
    except ValidationError as exc:
        if isinstance(reply, dict) and reply.get("status") == "failed" and isinstance(reply.get("error"), str):
            return PollResult("failed", error=reply["error"])  # lambdas' own report: crash, timeout, refused
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the result"
        return PollResult("failed", error=f"the runner function returned an unreadable poll result "
                                          f"({where}: {first['msg']})")
    return PollResult(found.status, payloads=list(found.payloads), state=found.state, error=found.error,
                      duration_s=found.duration_s)


def poll_remotely(function_name: str, poll: RemotePoll, *, pack_key: str, pack_dir: Path) -> PollResult:
    """Run one poll in the runner function and wait for its answer; never raises for the poll's failures.

    `pack_dir` is the sensor function's cached copy of the pack, read only to
    refuse packs with dependencies; the function fetches its own copy from
    the presigned URL of `pack_key`.
    """
    refusal = dependency_refusal("python3", pack_dir, function_name)
    if refusal is not None:
        return PollResult("failed", error=refusal)
    try:
        url = storage.presigned_pack_url(pack_key, PACK_URL_TTL_S)
        reply = lambdas.invoke_runner(function_name, build_payload(poll, url))  # looked up now: tests replace it
    except AttuneError as exc:  # ServiceUnavailable: the function could not be asked
        return PollResult("failed", error=f"the runner function could not poll: {exc.message}")
    return to_result(reply)
