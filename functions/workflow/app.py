"""Workflow Lambda: fed by the `workflow-tasks` queue (steps of workflows) and the `workflow-callbacks`
queue (finished children answering their Step Functions task tokens).

Thin: parse the record, call the one service function, report partial
batch failures so only the records that raised are redelivered.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.models.messages import CallbackMessage, WorkflowMessage
from chalicelib.observability import configure_logging
from chalicelib.workflows import callbacks, service

configure_logging()


def task_record(record: SQSRecord) -> None:
    """One workflow step; raising leaves the record for redelivery."""
    service.handle(WorkflowMessage.model_validate(json.loads(record.body)))


def callback_record(record: SQSRecord) -> None:
    """One finished child execution; raising leaves the record for redelivery."""
    callbacks.handle(CallbackMessage.model_validate(json.loads(record.body)))


def _process(event: dict[str, Any], context: Any, record_handler: Any) -> PartialItemFailureResponse:
    # One processor per call: it keeps per-batch state, and the local poller calls from several threads.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    """Lambda entry point for the `workflow-tasks` queue."""
    return _process(event, context, task_record)


def callback_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    """Lambda entry point for the `workflow-callbacks` queue."""
    return _process(event, context, callback_record)
