"""SQS sends, batched, with queue URLs resolved once per process.

boto3's errors end here: every function raises `ServiceUnavailable` (a
domain error the callers already handle) instead of botocore's exceptions.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.aws import names
from chalicelib.aws.clients import client
from chalicelib.core.errors import ServiceUnavailable

_lock = threading.Lock()
_urls: dict[str, str] = {}
BATCH = 10  # SQS's SendMessageBatch limit


@contextmanager
def _sqs(what: str) -> Iterator[None]:
    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise ServiceUnavailable(f"SQS: could not {what}: {exc}") from exc


def queue_url(logical: str) -> str:
    """URL of a logical queue (`events`, `work`, ...)."""
    found = _urls.get(logical)
    if found is None:
        with _sqs(f"resolve queue {logical!r}"):
            url = str(client("sqs").get_queue_url(QueueName=names.queue_name(logical))["QueueUrl"])
        with _lock:
            _urls[logical] = url
        found = url
    return found


def send_batch(
    logical: str, messages: Sequence[tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], int]],
    delay_seconds: int = 0,
) -> list[str]:
    """Send (id, body) or (id, body, delay) items; returns the ids SQS accepted (the rest stay for a retry).

    A per-item delay overrides `delay_seconds`; either is SQS DelaySeconds (0-900).
    """
    accepted: list[str] = []
    url = queue_url(logical)
    for start in range(0, len(messages), BATCH):
        chunk = messages[start : start + BATCH]
        with _sqs(f"send to {logical!r}"):
            resp = client("sqs", "send").send_message_batch(  # its own pool: kept-alive connections
                QueueUrl=url,
                Entries=[
                    {"Id": item[0], "MessageBody": json.dumps(item[1]),
                     "DelaySeconds": min(900, item[2] if len(item) > 2 else delay_seconds)}  # type: ignore[misc]
                    for item in chunk
                ],
            )
        accepted += [entry["Id"] for entry in resp.get("Successful", [])]
    return accepted


def reset_queue_urls() -> None:
    """Forget resolved URLs (tests that switch endpoints)."""
    with _lock:
        _urls.clear()


def release(logical: str, receipt_handle: str) -> None:
    """Make a received message visible again at once (a consumer that will not take it now).

    Failures are the caller's to tolerate: the message returns anyway after
    its visibility timeout. boto3's errors are translated here, at the edge.
    """
    url = queue_url(logical)
    with _sqs(f"release a {logical!r} message"):
        client("sqs").change_message_visibility(QueueUrl=url, ReceiptHandle=receipt_handle, VisibilityTimeout=0)
