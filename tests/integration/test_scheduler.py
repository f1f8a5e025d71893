"""The local EventBridge Scheduler fires what moto only stores: on time, once, enabled only."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from chalicelib.aws import names
from chalicelib.aws.clients import client
from chalicelib.local.scheduler import Scheduler, render_input
from tests.integration.conftest_aws import (  # noqa: F401 - fixtures
    aws_stack_fixture,
    eventually,
    moto_server_fixture,
)

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::123456789012:role/scheduler"


class Clock:
    """A clock the test moves by hand, starting at the real now (moto stamps real times)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _queue(stack: str) -> tuple[str, str]:
    sqs = client("sqs")
    url = sqs.create_queue(QueueName=names.queue_name("timer-fires"))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _schedule(stack: str, name: str, target_arn: str, *, expression: str = "rate(1 minute)",
              state: str = "ENABLED", payload: str = "{}", **extra: Any) -> None:
    scheduler = client("scheduler")
    try:
        scheduler.get_schedule_group(Name=stack)
    except scheduler.exceptions.ResourceNotFoundException:
        # not create-and-ignore-conflict: moto replaces an existing group, schedules and all
        scheduler.create_schedule_group(Name=stack)
    scheduler.create_schedule(
        Name=name, GroupName=stack, ScheduleExpression=expression, State=state,
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": target_arn, "RoleArn": ROLE, "Input": payload}, **extra)


def _drain(url: str) -> list[str]:
    sqs = client("sqs")
    bodies: list[str] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = got.get("Messages", [])
        if not messages:
            return bodies
        for m in messages:
            bodies.append(m["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def test_a_rate_schedule_fires_its_queue_target_in_the_running_scheduler(aws_stack: str) -> None:
    # GIVEN an enabled and a disabled rate schedule, both targeting one queue
    url, arn = _queue(aws_stack)
    _schedule(aws_stack, "on", arn, payload='{"which": "on", "at": "<aws.scheduler.scheduled-time>"}')
    _schedule(aws_stack, "off", arn, state="DISABLED", payload='{"which": "off"}')
    scheduler = Scheduler({}, refresh_seconds=0.2, tick_seconds=0.05, group_prefix=aws_stack)
    stop, ready = threading.Event(), threading.Event()

    # WHEN the scheduler runs
    thread = threading.Thread(target=scheduler.run, args=(stop, ready))
    thread.start()
    try:
        assert ready.wait(10)
        # THEN the enabled schedule fires at once (a rate schedule starts at its creation)
        body = eventually(lambda: client("sqs").receive_message(
            QueueUrl=url, WaitTimeSeconds=1).get("Messages"), message="schedule fired")[0]["Body"]
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    fired = json.loads(body)
    assert fired["which"] == "on"
    assert fired["at"].endswith("Z")
    assert _drain(url) == []  # the disabled one never fired, the enabled one once


def test_each_occurrence_fires_once_and_disabled_never(aws_stack: str) -> None:
    url, arn = _queue(aws_stack)
    _schedule(aws_stack, "on", arn, payload='{"which": "on"}')
    _schedule(aws_stack, "off", arn, state="DISABLED", payload='{"which": "off"}')
    clock = Clock()
    scheduler = Scheduler({}, clock=clock, group_prefix=aws_stack)
    clock.advance(1)
    scheduler.refresh()

    # the first occurrence (at creation) fires once, however often the scheduler ticks
    assert len(scheduler.fire_due()) == 1
    assert scheduler.fire_due() == []
    clock.advance(30)
    assert scheduler.fire_due() == []
    assert [json.loads(b)["which"] for b in _drain(url)] == ["on"]

    # a minute later comes the next one
    clock.advance(31)
    assert len(scheduler.fire_due()) == 1
    assert [json.loads(b)["which"] for b in _drain(url)] == ["on"]

    # re-enabling does not fire the occurrences missed while disabled
    client("scheduler").update_schedule(
        Name="off", GroupName=aws_stack, ScheduleExpression="rate(1 minute)", State="ENABLED",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": arn, "RoleArn": ROLE, "Input": '{"which": "off"}'})
    scheduler.refresh()
    assert [f for f in scheduler.fire_due() if f.schedule_arn.endswith("/off")] == []


def test_schedules_created_later_are_picked_up_and_deleted_ones_dropped(aws_stack: str) -> None:
    _url, arn = _queue(aws_stack)
    clock = Clock()
    scheduler = Scheduler({}, clock=clock, group_prefix=aws_stack)
    scheduler.refresh()
    assert scheduler.fire_due() == []

    _schedule(aws_stack, "late", arn)
    clock.advance(1)
    scheduler.refresh()
    assert len(scheduler.fire_due()) == 1

    client("scheduler").delete_schedule(Name="late", GroupName=aws_stack)
    scheduler.refresh()
    assert scheduler.schedules() == {}


def test_a_lambda_target_calls_the_mapped_local_handler(aws_stack: str) -> None:
    calls: list[Any] = []
    function = f"{aws_stack}-timers-ticker"
    _schedule(aws_stack, "tick", f"arn:aws:lambda:us-east-1:123456789012:function:{function}",
              payload='{"scheduled_time": "<aws.scheduler.scheduled-time>"}')
    clock = Clock()
    scheduler = Scheduler({function: lambda event, context: calls.append((event, context))},
                          clock=clock, group_prefix=aws_stack)
    clock.advance(1)
    scheduler.refresh()
    assert len(scheduler.fire_due()) == 1
    event, context = eventually(lambda: calls, message="handler called")[0]
    assert event["scheduled_time"].endswith("Z")
    assert context.function_name == function


def test_a_one_time_schedule_fires_once_and_can_delete_itself(aws_stack: str) -> None:
    url, arn = _queue(aws_stack)
    clock = Clock()
    at = (clock.now + timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%S")
    _schedule(aws_stack, "once", arn, expression=f"at({at})", ActionAfterCompletion="DELETE")
    scheduler = Scheduler({}, clock=clock, group_prefix=aws_stack)
    scheduler.refresh()
    assert scheduler.fire_due() == []
    clock.advance(31)
    assert len(scheduler.fire_due()) == 1
    clock.advance(60)
    assert scheduler.fire_due() == []
    assert len(_drain(url)) == 1
    scheduler.refresh()
    assert scheduler.schedules() == {}


def test_a_restarted_scheduler_does_not_fire_again(aws_stack: str, tmp_path: Path) -> None:
    url, arn = _queue(aws_stack)
    _schedule(aws_stack, "on", arn)
    state = tmp_path / "scheduler-state.json"
    clock = Clock()
    clock.advance(1)
    first = Scheduler({}, clock=clock, state_path=state, group_prefix=aws_stack)
    first.refresh()
    assert len(first.fire_due()) == 1

    restarted = Scheduler({}, clock=clock, state_path=state, group_prefix=aws_stack)
    restarted.refresh()
    assert restarted.fire_due() == []
    assert len(_drain(url)) == 1


def test_input_gets_the_scheduler_context_attributes() -> None:
    when = datetime(2026, 3, 1, 12, 0, 5, 250000, tzinfo=UTC)
    text = render_input('{"t": "<aws.scheduler.scheduled-time>", "a": "<aws.scheduler.schedule-arn>"}',
                        "arn:x", when)
    assert json.loads(text) == {"t": "2026-03-01T12:00:05Z", "a": "arn:x"}
    assert render_input(None, "arn:x", when) == "{}"
