"""Worker Lambda (and the local/long-lived poller): fed by the `work` queue, one record is one execution.

Two entry points over the same record handler. `handler` is the Lambda's:
it waits for its actions to finish before returning, because Lambda freezes
the environment once the handler returns. `poller_handler` is the long-lived
poller's (`attune dev`, ECS): it returns as soon as every record's action
has started, so the poller fetches the next batch while slow actions run.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.observability import configure_logging
from chalicelib.worker import service
from chalicelib.worker.slots import WorkerStopping

log = logging.getLogger(__name__)

configure_logging()
_local = threading.local()


def _processor() -> BatchProcessor:
    """One per thread: a BatchProcessor keeps the current batch on itself, and the poller calls from several threads.

    A batch whose every record failed is reported like any other (all ids in
    `batchItemFailures`) rather than raised: same redelivery, no traceback.
    """
    found: BatchProcessor | None = getattr(_local, "processor", None)
    if found is None:
        found = _local.processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return found


def record_handler(record: SQSRecord) -> None:
    """Start one execution's action; raising (before it started) leaves the record for redelivery.

    The batch processor keeps only the failure, not why: the reason is logged here.
    """
    try:
        service.handle_record(record.body, record.receipt_handle)
    except WorkerStopping:
        raise  # expected while draining: the message was released for the next worker
    except Exception:
        log.exception("work record %s failed before its action started; it will be redelivered",
                      record.message_id)
        raise


def poller_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    """Long-lived poller entry: partial batch failures; actions keep running after it returns."""
    return process_partial_response(
        event=event, record_handler=record_handler, processor=_processor(), context=context
    )


def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    """Lambda entry: as `poller_handler`, then wait for the batch's actions to finish."""
    response = poller_handler(event, context)
    service.wait_idle()
    return response
