"""moto forgets deleted messages and old receipts: its memory stays flat however many messages pass (issue 10)."""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path

import boto3
from moto import mock_aws

from chalicelib.local.moto_patches import (
    RECENT_RECEIPTS,
    RecentReceipts,
    WeakInstances,
    bound_sqs_deleted_receipts,
    cheap_sqs_receive,
    count_calls,
    track_model_instances_weakly,
)


def test_recent_receipts_keeps_the_newest_only() -> None:
    seen = RecentReceipts(limit=3)
    seen.update(["a", None, "b"])
    for item in ("c", "d"):
        seen.add(item)
    assert list(seen) == ["b", "c", "d"] and "a" not in seen and len(seen) == 3
    seen.add("b")  # seen again: the newest now
    seen.add("e")
    assert list(seen) == ["d", "b", "e"]


def test_a_queue_remembers_a_bounded_number_of_deleted_receipts() -> None:
    # GIVEN moto's SQS with the bound applied (as the local cloud's emulator applies it)
    bound_sqs_deleted_receipts(limit=200)
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="soak")["QueueUrl"]
        from moto.sqs.models import sqs_backends

        queue = sqs_backends["123456789012"]["us-east-1"].queues["soak"]
        # WHEN 2,000 messages are sent, received and deleted
        last = ""
        for n in range(0, 2000, 10):
            sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{n + i}"}
                                                          for i in range(10)])
            received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
            sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                            for i, m in enumerate(received)])
            last = received[-1]["ReceiptHandle"]
        # THEN the queue remembers at most 200 of the 2,000 deleted receipts (it remembered all before)
        assert isinstance(queue.deleted_messages, RecentReceipts)
        assert len(queue.deleted_messages) <= 200
        # AND deleting a recently deleted message again is still harmless, as SQS promises
        sqs.delete_message(QueueUrl=url, ReceiptHandle=last)


def _tracked(model: type) -> list[object]:
    """The instances moto lists for `model` (its metaclass gives each class its own list)."""
    return list(vars(model)["instances_tracked"])


def test_weak_instances_lists_live_models_only() -> None:
    class Unhashable:  # moto models may define __eq__ without __hash__
        __hash__ = None  # type: ignore[assignment]

    tracked = WeakInstances()
    kept, dropped = Unhashable(), Unhashable()
    tracked.append(kept)
    tracked.append(dropped)
    assert [id(item) for item in tracked] == [id(kept), id(dropped)]
    del dropped
    gc.collect()
    assert [id(item) for item in tracked] == [id(kept)] and len(tracked) == 1


def test_moto_keeps_no_deleted_sqs_message_alive() -> None:
    # GIVEN moto with its model instances tracked weakly (as the local cloud's emulator has them)
    track_model_instances_weakly()
    from moto.sqs.models import Message

    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="soak-instances")["QueueUrl"]
        gc.collect()
        before = len(_tracked(Message))
        # WHEN 500 messages are sent, received (moto deep-copies each one it delivers) and deleted
        for n in range(0, 500, 10):
            sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{n + i}"}
                                                          for i in range(10)])
            received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
            sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                            for i, m in enumerate(received)])
        gc.collect()
        # THEN none of the 1,000 message objects is kept (moto's list held every one before)
        assert len(_tracked(Message)) - before < 20
        # AND a live message is still listed, for moto's dashboard
        sqs.send_message(QueueUrl=url, MessageBody="still here")
        assert any(getattr(m, "body", None) == "still here" for m in _tracked(Message))


def test_weak_tracking_survives_a_reset_of_moto_models() -> None:
    # GIVEN weak tracking, and moto's reset putting plain lists back on every model class
    track_model_instances_weakly()
    from moto.core.model_instances import reset_model_data
    from moto.sqs.models import Message

    reset_model_data()
    # WHEN a model is made afterwards
    message = Message("id", "body")
    # THEN it is tracked weakly again
    assert isinstance(vars(Message)["instances_tracked"], WeakInstances)
    assert [id(m) for m in _tracked(Message)] == [id(message)]


def test_one_queue_remembers_about_a_megabyte_of_deleted_receipts_at_most() -> None:
    # A full queue's memory: RECENT_RECEIPTS handles of moto's 185 characters each.
    seen = RecentReceipts()
    for n in range(RECENT_RECEIPTS + 10):
        seen.add(f"{n:0185d}")
    size = sys.getsizeof(seen._items) + sum(sys.getsizeof(handle) for handle in seen)
    assert len(seen) == RECENT_RECEIPTS
    # 20,000 (the earlier bound, never reached by a 10,000-execution soak) would be ~7 MB.
    assert size < 1.5 * 1024 * 1024


def test_receive_checks_retention_without_scanning_the_queue() -> None:
    """GIVEN the cheap retention check, WHEN messages are received, THEN fresh ones come and expired ones do not,
    and the queue's attributes (a scan of every message) are never built for it."""
    cheap_sqs_receive()
    from moto.sqs.models import Queue, sqs_backends

    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        fresh = sqs.create_queue(QueueName="fresh")["QueueUrl"]
        old = sqs.create_queue(QueueName="old", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
        sqs.send_message_batch(QueueUrl=fresh, Entries=[{"Id": str(i), "MessageBody": "x"} for i in range(10)])
        sqs.send_message(QueueUrl=old, MessageBody="y")
        for message in sqs_backends["123456789012"]["us-east-1"].queues["old"]._messages:
            message.sent_timestamp -= 61_000  # sent 61 s ago: past the 60 s retention
        built = 0  # scans of a queue's messages, which building its attributes makes
        original = Queue.approximate_number_of_messages.fget
        assert original is not None

        def counting(self: Queue) -> object:
            nonlocal built
            built += 1
            return original(self)

        Queue.approximate_number_of_messages = property(counting)  # type: ignore[assignment, method-assign]
        try:
            received = sqs.receive_message(QueueUrl=fresh, MaxNumberOfMessages=10)["Messages"]
            expired = sqs.receive_message(QueueUrl=old).get("Messages")
        finally:
            Queue.approximate_number_of_messages = property(original)  # type: ignore[assignment, method-assign]
    assert len(received) == 10 and expired is None
    assert built == 0


def test_counted_calls_are_written_by_service_and_action(tmp_path: Path) -> None:
    # GIVEN the call counter, WHEN SQS is called THEN the dump names each action with its count
    dump = count_calls(tmp_path / "calls.json")
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="counted")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="x")
        sqs.receive_message(QueueUrl=url)
        sqs.receive_message(QueueUrl=url)
    dump()
    counts = json.loads((tmp_path / "calls.json").read_text())
    assert counts["sqs:ReceiveMessage"] >= 2 and counts["sqs:SendMessage"] >= 1


def test_sending_to_a_standard_queue_builds_no_attributes_and_fifo_still_deduplicates() -> None:
    cheap_sqs_receive()
    from moto.sqs.models import Queue

    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        standard = sqs.create_queue(QueueName="standard")["QueueUrl"]
        fifo = sqs.create_queue(QueueName="d.fifo", Attributes={"FifoQueue": "true",
                                                                "ContentBasedDeduplication": "true"})["QueueUrl"]
        built = 0  # scans of a queue's messages, which building its attributes makes
        original = Queue.approximate_number_of_messages.fget
        assert original is not None

        def counting(self: Queue) -> object:
            nonlocal built
            built += 1
            return original(self)

        Queue.approximate_number_of_messages = property(counting)  # type: ignore[assignment, method-assign]
        try:
            # WHEN ten messages go to a standard queue THEN no attribute dict was built for them
            sqs.send_message_batch(QueueUrl=standard, Entries=[{"Id": str(i), "MessageBody": "x"} for i in range(10)])
            standard_builds = built
            # AND a FIFO queue still drops a duplicate body (content-based deduplication)
            for _ in range(2):
                sqs.send_message(QueueUrl=fifo, MessageBody="same", MessageGroupId="g")
        finally:
            Queue.approximate_number_of_messages = property(original)  # type: ignore[assignment, method-assign]
        got = sqs.receive_message(QueueUrl=fifo, MaxNumberOfMessages=10).get("Messages", [])
        depth = sqs.get_queue_attributes(QueueUrl=standard, AttributeNames=["ApproximateNumberOfMessages"])
    assert standard_builds == 0
    assert len(got) == 1
    assert depth["Attributes"]["ApproximateNumberOfMessages"] == "10"
