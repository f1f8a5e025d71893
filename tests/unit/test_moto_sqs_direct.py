"""SQS's JSON requests skip moto's dispatcher and Flask app (issue 14), and are answered exactly as before.

Both ways are served by werkzeug's server with the local cloud's handler, and
driven by boto3 over HTTP: the answers (messages, and the error a missing
queue gets) must be the same, and only SQS's JSON requests may take the
short way.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from chalicelib.local.moto_patches import direct_sqs_json
from tests.unit.test_moto_server_speed import served

Environ = dict[str, Any]


@contextmanager
def moto(direct: bool) -> Iterator[tuple[str, list[str]]]:
    """moto's dispatcher over HTTP, behind the direct SQS path or not; (endpoint, what reached the dispatcher)."""
    dispatcher = DomainDispatcherApplication(create_backend_app)
    reached: list[str] = []

    def recording(environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
        reached.append(environ.get("HTTP_X_AMZ_TARGET") or environ.get("PATH_INFO", ""))
        answer: Iterable[bytes] = dispatcher(environ, start_response)
        return answer

    with served(direct_sqs_json(recording) if direct else recording) as (port, _):
        yield f"http://127.0.0.1:{port}", reached


def _client(service: str, endpoint: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",  # type: ignore[call-overload]
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def _conversation(endpoint: str) -> dict[str, Any]:
    """What a queue's life looks like to a client: bodies, attributes, deletes, and a missing queue's error."""
    sqs = _client("sqs", endpoint)
    url = sqs.create_queue(QueueName=f"direct-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    sent = sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "a", "MessageBody": '{"n": 1}',
         "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "work"}}},
        {"Id": "b", "MessageBody": "two"}])
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                              MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"])["Messages"]
    deleted = sqs.delete_message_batch(QueueUrl=url, Entries=[
        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])
    with pytest.raises(ClientError) as missing:
        sqs.send_message(QueueUrl=url.replace("direct-", "missing-"), MessageBody="x")
    return {
        "sent": sorted(s["Id"] for s in sent["Successful"]),
        "bodies": sorted(m["Body"] for m in got),
        "attributes": sorted(str(m.get("MessageAttributes")) for m in got),
        "system": sorted(sorted(m["Attributes"]) for m in got),
        "deleted": sorted(d["Id"] for d in deleted["Successful"]),
        "left": sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        ["Attributes"]["ApproximateNumberOfMessages"],
        "missing": (missing.value.response["Error"]["Code"],
                    missing.value.response["ResponseMetadata"]["HTTPStatusCode"]),
    }


def test_sqs_answers_the_same_the_short_way_and_only_sqs_takes_it() -> None:
    # GIVEN moto behind the direct path, and moto as it comes
    with moto(direct=True) as (endpoint, reached):
        short = _conversation(endpoint)
        # WHEN another service is called THEN it still goes through the dispatcher
        assert _client("sts", endpoint).get_caller_identity()["Account"]
    with moto(direct=False) as (endpoint, reached_plain):
        plain = _conversation(endpoint)
    # THEN a client sees the same conversation either way, a missing queue included
    assert short == plain
    assert short["bodies"] == ["two", '{"n": 1}'] and short["deleted"] == ["0", "1"] and short["left"] == "0"
    assert short["missing"][1] == 400
    # AND no SQS request reached the dispatcher the short way, while every one did the long way
    assert reached == ["/"] and not any(r.startswith("AmazonSQS.") for r in reached)
    assert sum(r.startswith("AmazonSQS.") for r in reached_plain) == 6
