"""Timers Lambdas: the ticker (EventBridge Scheduler, once a minute) and the fire handler (`timer-fires` queue)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools.utilities.batch import AsyncBatchProcessor, EventType, async_process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

from chalicelib.observability import configure_logging
from chalicelib.timers import fire, ticker

configure_logging()


def ticker_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Claim and send the coming minute's fires; `event` is Scheduler's {"scheduled_time", "schedule_arn"}."""
    return asdict(ticker.tick())


def fire_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    """Fire a batch of due timers concurrently; a record that raises is reported and redelivered.

    The processor is made per call: it keeps per-batch state, and the local
    poller calls this handler from several threads at once.
    """
    processor = AsyncBatchProcessor(event_type=EventType.SQS)
    return async_process_partial_response(
        event=event, record_handler=fire.handle_record, processor=processor, context=context
    )


# infra/template.yaml names the queue consumer `app.handler`.
handler = fire_handler
