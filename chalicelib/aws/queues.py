"""SQS sends, batched, with queue URLs resolved once per process."""

from __future__ import annotations

import json
import threading
from typing import Any

from chalicelib.aws import names
from chalicelib.aws.clients import client

_lock = threading.Lock()
_urls: dict[str, str] = {}
BATCH = 10  # SQS's SendMessageBatch limit


def queue_url(logical: str) -> str:
    """URL of a logical queue (`events`, `work`, ...)."""
    found = _urls.get(logical)
    if found is None:
        url = str(client("sqs").get_queue_url(QueueName=names.queue_name(logical))["QueueUrl"])
        with _lock:
            _urls[logical] = url
        found = url
    return found


def send_batch(logical: str, messages: list[tuple[str, dict[str, Any]]], delay_seconds: int = 0) -> list[str]:
    """Send (id, body) pairs; returns the ids SQS accepted (the rest stay for a retry)."""
    accepted: list[str] = []
    url = queue_url(logical)
    for start in range(0, len(messages), BATCH):
        chunk = messages[start : start + BATCH]
        resp = client("sqs").send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": ident, "MessageBody": json.dumps(body), "DelaySeconds": delay_seconds} for ident, body in chunk
            ],
        )
        accepted += [entry["Id"] for entry in resp.get("Successful", [])]
    return accepted


def reset_queue_urls() -> None:
    """Forget resolved URLs (tests that switch endpoints)."""
    with _lock:
        _urls.clear()
