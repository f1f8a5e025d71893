"""Rules Lambda: fed by the `events` queue; one record is one event to evaluate."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.models.messages import EventMessage
from chalicelib.observability import configure_logging
from chalicelib.pipeline.outbox import publish
from chalicelib.pipeline.rules_engine import process_event

configure_logging()


def record_handler(record: SQSRecord) -> None:
    """Evaluate one event; raising leaves the record for redelivery."""
    publish(process_event(EventMessage.model_validate(json.loads(record.body))))


def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    """Lambda entry point with partial batch failure reporting."""
    # One processor per call: it keeps per-batch state, and the local poller calls from several threads.
    processor = BatchProcessor(event_type=EventType.SQS)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
