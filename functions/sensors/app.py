"""Sensor Lambda: a sensor's EventBridge Scheduler schedule invokes it, and on AWS the `sensor-polls` queue feeds it.

One invocation polls one sensor (chalicelib/sensors/service.py): its poll
runs in its own sandboxed process with a timeout, and whatever the sensor
does (raise, hang, return garbage) is recorded on the sensor and never
raised here, because a raised error would make Lambda retry an invocation
the next schedule fire repeats anyway. Only the platform's own failures
(the database unreachable) raise, so they show in the function's errors.
A batch of delayed polls (a sub-minute sensor on AWS) reports partial
failures, like every queue consumer.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.models.sensors import SensorPoll, SensorTick
from chalicelib.observability import configure_logging
from chalicelib.sensors import service

configure_logging()
log = logging.getLogger(__name__)


def _poll_record(record: SQSRecord) -> None:
    service.poll_message(SensorPoll.model_validate_json(record.body))


def handler(event: dict[str, Any], context: Any) -> dict[str, Any] | PartialItemFailureResponse:
    """A schedule's input (`SensorTick`), or an SQS batch of delayed polls (`SensorPoll`)."""
    if "Records" in event:
        processor = BatchProcessor(event_type=EventType.SQS)  # per call: it keeps per-batch state
        return process_partial_response(event=event, record_handler=_poll_record, processor=processor,
                                        context=context)
    report = service.tick(SensorTick.model_validate_json(json.dumps(event)))
    summary = report.summary()
    log.info("sensor tick: %s", summary)
    return summary
