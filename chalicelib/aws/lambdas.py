"""Synchronous invocations of ActionRunnerFunction: the worker's one Lambda call, and its errors translated.

The worker waits for the runner's answer (RequestResponse), so the client
reads for longer than the runner may live (Lambda's 900 s) and never retries
on its own: a retried Invoke after a read timeout or a dropped connection
would run the action a second time. Only refusals that prove the action did
not start (throttling, a connection never made) are tried again here.

What comes back is RunResult-shaped (`chalicelib.runners.base.RunResult` as
a dict). A function that crashed, timed out or ran out of memory
(`FunctionError`) is an action that failed, with the reason as its `error`;
a request Lambda refuses for what it is (too large) is one too. Anything
else (no credentials, no such function, throttled for too long) raises
`ServiceUnavailable`: the runner function could not be asked.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError

from chalicelib.aws.clients import ensure_local_credentials
from chalicelib.config import settings
from chalicelib.core.errors import ServiceUnavailable

log = logging.getLogger(__name__)

RUNNER_MAX_S = 900  # Lambda's limit, and ActionRunnerFunction's Timeout (infra/template.yaml)
READ_TIMEOUT_S = RUNNER_MAX_S + 60  # the answer of a runner that used all of its time still arrives
RETRY_DELAYS_S = (1.0, 2.0, 4.0)
MAX_ERROR_CHARS = 2000
# Lambda refused the invocation before running anything: trying again cannot run the action twice.
NOT_STARTED = frozenset({"TooManyRequestsException", "ResourceConflictException", "ResourceNotReadyException"})
# Lambda refused the request itself: trying again cannot help; the action fails with the reason.
REFUSED = {
    "RequestTooLargeException": "the action's parameters are too large for the runner function (6 MB)",
    "InvalidRequestContentException": "the runner function refused the request",
}

_lock = threading.Lock()
_clients: dict[tuple[str, str | None], Any] = {}


def _client() -> Any:
    """The Lambda client for runner invocations: its own timeouts, so not `clients.client("lambda")`.

    Cached per region and endpoint, like the pack signer, since tests switch endpoints.
    """
    cfg = settings()
    where = (cfg.aws_region, cfg.aws_endpoint_url)
    found = _clients.get(where)
    if found is not None:
        return found
    with _lock:
        found = _clients.get(where)
        if found is None:
            ensure_local_credentials()
            found = _clients[where] = boto3.session.Session().client(
                "lambda",
                region_name=cfg.aws_region,
                endpoint_url=cfg.aws_endpoint_url,
                config=Config(
                    retries={"total_max_attempts": 1, "mode": "standard"},
                    connect_timeout=5,
                    read_timeout=READ_TIMEOUT_S,
                    max_pool_connections=32,
                ),
            )
    return found


def reset_client() -> None:
    """Forget the cached client (tests that switch endpoints)."""
    with _lock:
        _clients.clear()


def failed_reply(error: str) -> dict[str, Any]:
    """A RunResult-shaped failure for an action the runner function did not (completely) run."""
    return {"status": "failed", "exit_code": None, "stdout": "", "stderr": "", "output": None,
            "error": error[:MAX_ERROR_CHARS], "timed_out": False, "pid": None, "duration_s": 0.0}


def _function_error(kind: str, body: Any) -> dict[str, Any]:
    """Lambda's own report of a crash, timeout or out-of-memory, as the action's failure."""
    if isinstance(body, dict) and body.get("errorMessage"):
        detail = f"{body.get('errorType') or kind}: {body['errorMessage']}"
    else:
        detail = kind
    return failed_reply(f"the action runner function failed: {detail}")


def invoke_runner(
    function_name: str, payload: dict[str, Any], *, retry_delays: Sequence[float] = RETRY_DELAYS_S
) -> dict[str, Any]:
    """Run one action in the runner function and wait for its RunResult (as a dict).

    Raises ServiceUnavailable when the function could not be invoked at all.
    """
    body = json.dumps(payload, separators=(",", ":")).encode()
    delays = list(retry_delays)
    while True:
        try:
            response = _client().invoke(FunctionName=function_name, InvocationType="RequestResponse", Payload=body)
            raw = response["Payload"].read()
            break
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in REFUSED:
                return failed_reply(REFUSED[code])
            if code not in NOT_STARTED or not delays:
                raise ServiceUnavailable(f"the action runner function could not be invoked ({code}): {exc}") from exc
            reason: str = code
        except (EndpointConnectionError, ConnectTimeoutError) as exc:  # the request was never sent
            if not delays:
                raise ServiceUnavailable(f"the action runner function is unreachable: {exc}") from exc
            reason = type(exc).__name__
        except BotoCoreError as exc:  # a read timeout or a dropped connection: the action may have run
            raise ServiceUnavailable(f"no answer from the action runner function: {exc}") from exc
        delay = delays.pop(0)
        log.warning("invoking %s: %s; trying again in %gs", function_name, reason, delay)
        time.sleep(delay)
    try:
        reply = json.loads(raw) if raw else None
    except ValueError:
        reply = None
    if response.get("FunctionError"):
        return _function_error(str(response["FunctionError"]), reply)
    if not isinstance(reply, dict):
        return failed_reply("the action runner function returned no result")
    return reply
