"""Notifier Lambda: fed by the `notifications` queue; one record is one change to push to WebSocket clients."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.models.messages import NotificationMessage
from chalicelib.notifications.delivery import deliver
from chalicelib.observability import configure_logging

configure_logging()


def record_handler(record: SQSRecord) -> None:
    """Deliver one notification (and any earlier one of its entity); raising leaves the record for redelivery."""
    deliver(NotificationMessage.model_validate(json.loads(record.body)))


def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    """Lambda entry point with partial batch failure reporting; records are handled in order."""
    # One processor per call: it keeps per-batch state, and the local poller calls from several threads.
    processor = BatchProcessor(event_type=EventType.SQS)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
