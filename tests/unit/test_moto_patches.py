"""moto's SQS forgets old deleted receipts: its memory stays flat however many messages pass (issue 10)."""

from __future__ import annotations

import boto3
from moto import mock_aws

from chalicelib.local.moto_patches import RecentReceipts, bound_sqs_deleted_receipts


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
