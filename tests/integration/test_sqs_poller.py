"""The local SQS -> handler mapping behaves like Lambda's: real events, partial failures, stop."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from chalicelib.aws import names
from chalicelib.aws.clients import client
from chalicelib.local import sqs_poller
from chalicelib.local.sqs_poller import QueueBinding, SqsPoller, failed_ids
from tests.integration.conftest_aws import (  # noqa: F401 - fixtures
    aws_stack_fixture,
    eventually,
    moto_server_fixture,
)

pytestmark = pytest.mark.integration


class Recorder:
    """A handler that records every record it sees and fails the bodies it is told to."""

    def __init__(self, fail: set[str] | None = None, raise_on: set[str] | None = None) -> None:
        self.fail = fail or set()
        self.raise_on = raise_on or set()
        self.records: list[dict[str, Any]] = []
        self.contexts: list[Any] = []
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        with self.lock:
            self.records.extend(event["Records"])
            self.contexts.append(context)
        if any(r["body"] in self.raise_on for r in event["Records"]):
            raise RuntimeError("boom")
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]}
                                      for r in event["Records"] if r["body"] in self.fail]}

    def bodies(self) -> list[str]:
        with self.lock:
            return [r["body"] for r in self.records]


def _queue(visibility: int = 2) -> str:
    sqs = client("sqs")
    url: str = sqs.create_queue(QueueName=names.queue_name("work"),
                                Attributes={"VisibilityTimeout": str(visibility)})["QueueUrl"]
    return url


def _send(url: str, *bodies: str) -> None:
    for body in bodies:
        client("sqs").send_message(QueueUrl=url, MessageBody=body, MessageAttributes={
            "kind": {"DataType": "String", "StringValue": "test"}})


def _visible_and_inflight(url: str) -> tuple[int, int]:
    attrs = client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])


def _binding(**kw: Any) -> QueueBinding:
    return QueueBinding(queue="work", handler="tests.unused:handler", wait_seconds=1, **kw)


def test_successes_are_deleted_and_failures_come_back(aws_stack: str) -> None:
    # GIVEN a queue with three messages and a handler that fails "b"
    url = _queue(visibility=2)
    _send(url, "a", "b", "c")
    handler = Recorder(fail={"b"})
    poller = SqsPoller(_binding(batch_size=10), handler=handler)

    # WHEN the poller runs
    poller.start()
    try:
        # THEN every message is handled, and "b" comes back after the visibility timeout
        eventually(lambda: handler.bodies().count("b") >= 2, timeout=15,
                   message="failed message redelivered")
        assert {"a", "c"} <= set(handler.bodies())
        assert handler.bodies().count("a") == 1
        assert handler.bodies().count("c") == 1
    finally:
        assert poller.stop(timeout=10)
    retried = [r for r in handler.records if r["body"] == "b"]
    assert int(retried[-1]["attributes"]["ApproximateReceiveCount"]) >= 2
    visible, in_flight = _visible_and_inflight(url)
    assert visible + in_flight == 1  # only the failing message is left


def test_records_have_the_lambda_sqs_shape(aws_stack: str) -> None:
    url = _queue()
    _send(url, "hello")
    handler = Recorder()
    poller = SqsPoller(_binding(), handler=handler)
    poller.start()
    try:
        eventually(lambda: handler.records, message="record delivered")
    finally:
        poller.stop(timeout=10)
    record = handler.records[0]
    assert set(record) >= {"messageId", "receiptHandle", "body", "attributes",
                           "messageAttributes", "md5OfBody", "eventSource", "eventSourceARN",
                           "awsRegion"}
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].endswith(f":{names.queue_name('work')}")
    assert record["awsRegion"] == "us-east-1"
    assert record["messageAttributes"]["kind"]["stringValue"] == "test"
    assert record["messageAttributes"]["kind"]["dataType"] == "String"
    assert "SentTimestamp" in record["attributes"]
    assert handler.contexts[0].get_remaining_time_in_millis() > 0
    eventually(lambda: _visible_and_inflight(url) == (0, 0), message="message deleted")


def test_an_exception_fails_the_whole_batch(aws_stack: str) -> None:
    # GIVEN a handler that raises on any batch containing "x"
    url = _queue(visibility=1)
    _send(url, "x")
    handler = Recorder(raise_on={"x"})
    poller = SqsPoller(_binding(batch_size=1), handler=handler)

    # WHEN it runs
    poller.start()
    try:
        # THEN the message is retried (it was never deleted)
        eventually(lambda: handler.bodies().count("x") >= 2, timeout=15, message="batch retried")
    finally:
        poller.stop(timeout=10)


def test_stop_finishes_the_in_flight_batch(aws_stack: str) -> None:
    # GIVEN a handler blocked in the middle of a batch
    url = _queue(visibility=30)
    _send(url, "slow")
    entered, release = threading.Event(), threading.Event()

    def slow(event: dict[str, Any], context: Any) -> None:
        entered.set()
        release.wait(10)

    poller = SqsPoller(_binding(concurrency=2), handler=slow)
    poller.start()
    assert entered.wait(10)

    # WHEN a stop is asked for while the batch runs
    stopped: list[bool] = []
    stopper = threading.Thread(target=lambda: stopped.append(poller.stop(timeout=15)))
    stopper.start()
    stopper.join(0.3)

    # THEN the stop waits for the batch, which still completes and is deleted
    assert stopper.is_alive()
    release.set()
    stopper.join(15)
    assert stopped == [True]
    assert not poller.alive()
    assert _visible_and_inflight(url) == (0, 0)


def test_malformed_failure_reports_fail_the_whole_batch() -> None:
    ids = ["1", "2"]
    assert failed_ids(None, ids) == set()
    assert failed_ids({"batchItemFailures": []}, ids) == set()
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": "2"}]}, ids) == {"2"}
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": ""}]}, ids) == {"1", "2"}
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": "9"}]}, ids) == {"1", "2"}
    assert failed_ids({"batchItemFailures": "nope"}, ids) == {"1", "2"}


def test_bindings_are_validated() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        QueueBinding(queue="work", handler="x.y", batch_size=11)
    with pytest.raises(ValueError, match="concurrency"):
        QueueBinding(queue="work", handler="x.y", concurrency=0)


def test_a_handler_longer_than_the_visibility_timeout_is_not_redelivered(aws_stack: str) -> None:
    # GIVEN a 2 s visibility timeout and a handler that takes 5 s
    url = _queue(visibility=2)
    _send(url, "long")
    calls: list[str] = []
    done = threading.Event()

    def long(event: dict[str, Any], context: Any) -> None:
        calls.extend(r["body"] for r in event["Records"])
        time.sleep(5)  # the scenario itself: work that outlives the visibility timeout
        done.set()

    # WHEN a poller with a second idle thread runs it
    poller = SqsPoller(_binding(concurrency=2), handler=long)
    poller.start()
    try:
        assert done.wait(15)
        eventually(lambda: _visible_and_inflight(url) == (0, 0), message="message deleted")
    finally:
        poller.stop(timeout=10)

    # THEN the message was never handed out again while it ran
    assert calls == ["long"]


def test_a_dead_consumer_frees_its_messages_in_the_local_visibility_not_the_queues(
    aws_stack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a queue whose own visibility timeout is long (as Lambda needs: work is 960 s in the template)
    # and a local visibility of 2 s
    from chalicelib.config import settings

    monkeypatch.setenv("ATTUNE_LOCAL_VISIBILITY_SECONDS", "2")
    settings.cache_clear()
    url = _queue(visibility=600)
    _send(url, "lost")
    # WHEN a consumer receives the message and dies without deleting it (a handler that raises is
    # the same to SQS: no delete, no extension)
    dying = SqsPoller(_binding(), handler=Recorder(raise_on={"lost"}), queue_url=url)
    dying.start()
    eventually(lambda: dying.batches >= 1, message="the first receive")
    dying.stop(timeout=5)
    started = time.monotonic()
    # THEN another consumer gets it within seconds, not after the queue's 600 s
    survivor = Recorder()
    poller = SqsPoller(_binding(), handler=survivor, queue_url=url)
    poller.start()
    try:
        eventually(lambda: survivor.bodies() == ["lost"], timeout=15, message="the redelivery")
        assert time.monotonic() - started < 10
    finally:
        poller.stop(timeout=5)
        settings.cache_clear()


def test_a_slow_handler_keeps_its_batch_past_the_local_visibility(
    aws_stack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a local visibility of 2 s and a handler that takes 5 s
    from chalicelib.config import settings

    monkeypatch.setenv("ATTUNE_LOCAL_VISIBILITY_SECONDS", "2")
    settings.cache_clear()
    url = _queue(visibility=600)
    _send(url, "slow")
    seen = Recorder()
    release = threading.Event()

    def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
        result = seen(event, context)
        release.wait(5)
        return result

    first = SqsPoller(_binding(concurrency=2), handler=slow, queue_url=url)
    first.start()
    try:
        eventually(lambda: seen.bodies() == ["slow"], message="the first delivery")
        # WHEN the handler is still running 4 s later (twice the visibility)
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            # THEN the message was never delivered a second time (the keeper extended it)
            assert seen.bodies() == ["slow"]
            time.sleep(0.2)
    finally:
        release.set()
        first.stop(timeout=10)
        settings.cache_clear()
    assert _visible_and_inflight(url) == (0, 0), "done: deleted"


def test_messages_handled_one_by_one_are_deleted_together(aws_stack: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a poller taking one message per receive, whose handled messages linger before their delete
    monkeypatch.setattr(sqs_poller, "DELETE_LINGER_SECONDS", 30.0)
    url = _queue(visibility=60)
    handler = Recorder()
    poller = SqsPoller(_binding(batch_size=1), handler=handler)
    deleted: list[int] = []
    real = poller._delete_now

    def counting(messages: list[dict[str, Any]]) -> None:
        deleted.append(len(messages))
        real(messages)

    poller._delete_now = counting  # type: ignore[method-assign]
    poller.start()
    try:
        # WHEN three messages are handled, one per receive
        _send(url, "a", "b", "c")
        eventually(lambda: len(handler.bodies()) == 3, message="all three handled")
        assert deleted == []  # still lingering
    finally:
        poller.stop(timeout=10)
    # THEN the stop deleted them in one call, and the queue is empty
    assert sorted(handler.bodies()) == ["a", "b", "c"]
    assert deleted == [3]
    assert _visible_and_inflight(url) == (0, 0)


def _timed_polls(poller: SqsPoller) -> list[tuple[str, float, float, int]]:
    """Every ReceiveMessage of `poller`: (thread, started, returned, messages received)."""
    polls: list[tuple[str, float, float, int]] = []
    real = poller._receive

    def timed() -> list[dict[str, Any]]:
        started = time.monotonic()
        got = real()
        polls.append((threading.current_thread().name, started, time.monotonic(), len(got)))
        return got

    poller._receive = timed  # type: ignore[method-assign]
    return polls


def _gap_after_the_batch(polls: list[tuple[str, float, float, int]]) -> float | None:
    """How long the thread that received a batch waited before its next long poll (None: not polled yet)."""
    found = next(((i, p) for i, p in enumerate(list(polls)) if p[3] > 0), None)
    if found is None:
        return None
    i, (thread, _, returned, _) = found
    return next((p[1] - returned for p in polls[i + 1:] if p[0] == thread), None)


@pytest.mark.parametrize("concurrency", [2, 1])
def test_a_thread_lets_one_already_in_a_long_poll_take_the_next_message(
    aws_stack: str, monkeypatch: pytest.MonkeyPatch, concurrency: int,
) -> None:
    # GIVEN a poller whose threads pause 0.5 s after a batch that was not full
    monkeypatch.setattr(sqs_poller, "REPOLL_PAUSE_SECONDS", 0.5)
    url = _queue(visibility=60)
    handler = Recorder()
    poller = SqsPoller(_binding(batch_size=10, concurrency=concurrency), handler=handler)
    polls = _timed_polls(poller)
    poller.start()
    try:
        # WHEN one message comes (two threads: the other one waits in a long poll meanwhile)
        eventually(lambda: poller._in_receive == concurrency, message="every thread in a long poll")
        _send(url, "a")
        eventually(lambda: _gap_after_the_batch(polls) is not None, timeout=10, message="its next poll")
        gap = _gap_after_the_batch(polls)
        assert handler.bodies() == ["a"]
    finally:
        assert poller.stop(timeout=10)
    # THEN with another thread waiting it polls again only after the pause; alone, at once
    assert gap is not None
    if concurrency == 2:
        assert gap >= 0.45, polls
    else:
        assert gap < 0.3, polls


def test_at_idle_two_threads_wait_in_a_long_poll_and_a_backlog_brings_them_all(aws_stack: str) -> None:
    # GIVEN a poller of five threads on a quiet queue, taking batches of two, whose handler takes 0.3 s
    url = _queue(visibility=60)
    running: list[int] = []
    peak = [0]
    lock = threading.Lock()

    def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
        with lock:
            running.append(1)
            peak[0] = max(peak[0], len(running))
        time.sleep(0.3)  # the handler's work
        with lock:
            running.pop()
        return {"batchItemFailures": []}

    poller = SqsPoller(_binding(batch_size=2, concurrency=5), handler=slow)
    polls = _timed_polls(poller)
    poller.start()
    try:
        # WHEN nothing comes THEN only IDLE_RECEIVERS of them long-poll (each 1 s here), the rest wait
        eventually(lambda: len(polls) >= 6, timeout=10, message="three rounds of idle long polls")
        assert len({p[0] for p in polls}) == sqs_poller.IDLE_RECEIVERS == 2, polls
        # (also while long polls end and the waiting threads are woken: none of them goes along)
        in_receive, until = [], time.monotonic() + 3.5
        while time.monotonic() < until:
            in_receive.append(poller._in_receive)
            time.sleep(0.001)  # sampling the count, not waiting for the poller
        assert max(in_receive) <= 2 and len({p[0] for p in polls}) == 2, (max(in_receive), polls)
        # AND WHEN twenty messages come at once THEN the full batches bring every thread in
        for start in range(0, 20, 10):
            client("sqs").send_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "MessageBody": str(i)} for i in range(start, start + 10)])
        eventually(lambda: _visible_and_inflight(url) == (0, 0), timeout=20, message="all handled and deleted")
    finally:
        assert poller.stop(timeout=10)
    assert peak[0] >= 3, peak
