"""The emulator's per-request costs (issue 14): kept-alive connections, one write per answer, no per-request scans.

The keep-alive handler is served by werkzeug's own development server, as the
local cloud's moto is, in front of small WSGI applications that behave like
moto's (reading the body, or not; HEAD answers; errors), so each rule of when
a connection may serve another request is checked on the wire.
"""

from __future__ import annotations

import http.client
import io
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.moto_server.werkzeug_app import MotoRequestHandler
from werkzeug.serving import make_server

from chalicelib.local import moto_patches
from chalicelib.local.moto_patches import (
    _Body,
    cache_moto_module_list,
    cache_response_method_names,
    keep_alive_request_handler,
)

StartResponse = Callable[..., Any]
Environ = dict[str, Any]
App = Callable[[Environ, StartResponse], Iterable[bytes]]


@contextmanager
def served(app: App) -> Iterator[tuple[int, list[str]]]:
    """`app` behind werkzeug's threaded server with the keep-alive handler; (port, the peer port of each request)."""
    peers: list[str] = []

    def recording(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        peers.append(str(environ["REMOTE_PORT"]))
        return app(environ, start_response)

    server = make_server("127.0.0.1", 0, recording, threaded=True,
                         request_handler=keep_alive_request_handler(MotoRequestHandler))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port, peers
    finally:
        server.shutdown()
        thread.join(10)


def echo(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Answers with the request body it read (as moto reads a form or JSON body)."""
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"got:", body]


def ignores_body(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Answers without reading the body (an error raised before moto parses the request)."""
    start_response("403 Forbidden", [("Content-Length", "2")])
    return [b"no"]


def test_connections_close_after_each_answer_by_default() -> None:
    # GIVEN the handler as the local cloud runs it (KEEP_ALIVE off: see its comment)
    with served(echo) as (port, _peers):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("POST", "/", body=b"one")
        resp = conn.getresponse()
        # THEN the answer is whole and says the connection closes
        assert (resp.status, resp.read(), resp.getheader("Connection")) == (200, b"got:one", "close")
        conn.close()


def test_only_sqs_sends_keep_their_connection_by_default() -> None:
    # GIVEN the handler as the local cloud runs it
    with served(echo) as (port, peers):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        kept = []
        # WHEN two sends go over one connection
        for i in range(2):
            conn.request("POST", "/", body=f"s{i}".encode(), headers={"X-Amz-Target": "AmazonSQS.SendMessageBatch"})
            resp = conn.getresponse()
            kept.append((resp.status, resp.read(), resp.getheader("Connection")))
        # THEN both are answered on it, neither closes it
        assert kept == [(200, b"got:s0", None), (200, b"got:s1", None)]
        assert len(set(peers)) == 1
        # AND anything else on it (a long poll) is answered, then the connection closes
        conn.request("POST", "/", body=b"r", headers={"X-Amz-Target": "AmazonSQS.ReceiveMessage"})
        resp = conn.getresponse()
        assert (resp.status, resp.read(), resp.getheader("Connection")) == (200, b"got:r", "close")
        conn.close()


def test_one_connection_serves_many_requests_each_answered_in_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moto_patches, "KEEP_ALIVE", True)
    # GIVEN the keep-alive handler WHEN three requests go over one connection
    with served(echo) as (port, peers):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        answers = []
        for i in range(3):
            conn.request("POST", "/", body=f"n={i}".encode())
            resp = conn.getresponse()
            answers.append((resp.status, resp.read(), resp.getheader("Connection")))
        conn.close()
    # THEN each is answered, with its length, and none closes the connection
    assert answers == [(200, f"got:n={i}".encode(), None) for i in range(3)]
    assert len(set(peers)) == 1  # one client socket served all three


def test_an_unread_body_is_drained_so_the_next_request_is_parsed_right(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moto_patches, "KEEP_ALIVE", True)
    # GIVEN an application that never reads the body WHEN two requests with bodies share a connection
    with served(ignores_body) as (port, peers):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        statuses = []
        for _ in range(2):
            conn.request("POST", "/", body=b"x" * 100_000)
            resp = conn.getresponse()
            statuses.append((resp.status, resp.read()))
        conn.close()
    # THEN both are answered (the first body did not become the second request line)
    assert statuses == [(403, b"no"), (403, b"no")]
    assert len(set(peers)) == 1


def test_head_keeps_the_applications_length_and_sends_no_body() -> None:
    def head(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Length", "1234")])  # an object's size, as S3's HeadObject says
        return [b""]

    with served(head) as (port, _):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("HEAD", "/bucket/key")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("Content-Length") == "1234" and resp.read() == b""
        conn.request("POST", "/", body=b"after")  # the connection is still in step
        assert conn.getresponse().status == 200
        conn.close()


def test_a_chunked_request_is_answered_and_its_connection_closed() -> None:
    # GIVEN a request whose body's end only the chunks tell (werkzeug dechunks it)
    with served(echo) as (port, _), socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5\r\nhello\r\n0\r\n\r\n")
        reply = b""
        while chunk := sock.recv(65536):  # the server closes: recv returns b"" at the end
            reply += chunk
    # THEN it is answered with the body, and the server says it closes the connection
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" in head and body == b"got:hello"


def test_an_application_error_is_a_500_and_closes_the_connection() -> None:
    def broken(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        raise RuntimeError("boom")

    with served(broken) as (port, _):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/", body=b"x")
        resp = conn.getresponse()
        assert resp.status == 500 and resp.getheader("Connection") == "close"
        resp.read()
        conn.close()


def test_a_response_leaves_in_one_send() -> None:
    """Status line, headers and body go out in one segment (no Nagle wait between a header and a body write)."""
    with served(echo) as (port, _), socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab")
        first = sock.recv(65536)  # what one send delivered
    assert first.startswith(b"HTTP/1.1 200") and first.endswith(b"\r\n\r\ngot:ab")


def test_the_body_reader_stops_at_the_length_and_drains_the_rest() -> None:
    stream = io.BytesIO(b"abcdefNEXT")
    body = _Body(stream, 6)
    assert body.read(2) == b"ab" and body.readline() == b"cdef" and body.read() == b""
    assert body.drain() and stream.read() == b"NEXT"
    short = _Body(io.BytesIO(b"abc"), 10)  # the client went away mid-body
    assert not short.drain()


def test_sqs_still_works_with_the_module_list_and_method_names_cached() -> None:
    # GIVEN both caches WHEN SQS is used in-process THEN it answers as before, and the caches hold
    cache_moto_module_list()
    cache_response_method_names()
    from moto import backends
    from moto.core import responses

    assert "sqs" in backends.list_of_moto_modules() and "__pycache__" not in backends.list_of_moto_modules()
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="cached")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="x")
        assert sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "x"
    names = vars(responses)["method_names_from_class"]
    from moto.sqs.responses import SQSResponse

    assert names(SQSResponse) is names(SQSResponse) and "receive_message" in names(SQSResponse)


def _messages_of(queue_name: str) -> list[Any]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import sqs_backends

    return list(sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].queues[queue_name]._messages)


def test_a_long_poll_hands_out_a_message_when_it_comes_due_not_on_the_next_second() -> None:
    # GIVEN the patch, a delayed message and an in-flight one, each coming due 0.3 s from now
    # (moto alone would wake its long poll only on the next whole second: 1 s)
    moto_patches.prompt_sqs_long_polls()
    from moto.core.utils import unix_time_millis

    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="due")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="delayed", DelaySeconds=5)
        (message,) = _messages_of("due")
        message.delayed_until = unix_time_millis() + 300
        # WHEN a long poll waits for it THEN it is handed out when due
        started = time.monotonic()
        got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5, VisibilityTimeout=5)["Messages"]
        assert [m["Body"] for m in got] == ["delayed"] and 0.25 <= time.monotonic() - started < 0.8
        # AND a received message whose visibility times out is handed out again when it does
        message.visible_at = unix_time_millis() + 300
        started = time.monotonic()
        again = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)["Messages"]
        assert [m["Body"] for m in again] == ["delayed"] and 0.25 <= time.monotonic() - started < 0.8
        # AND with nothing due, the poll still waits out its time and returns empty
        sqs.delete_message(QueueUrl=url, ReceiptHandle=again[0]["ReceiptHandle"])
        started = time.monotonic()
        assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", []) == []
        assert time.monotonic() - started >= 0.95


def test_request_ids_and_receipt_handles_are_drawn_in_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the patch, and moto's per-character draw made to fail
    moto_patches.cheap_random_strings()
    from moto.moto_api._internal.moto_random import MotoRandom

    def per_character(self: Any, seq: Any) -> Any:
        raise AssertionError("drawn one character at a time")

    monkeypatch.setattr(MotoRandom, "choice", per_character)
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="handles")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="x")
        # WHEN a message is received THEN its receipt handle has moto's shape, and every answer its request id
        got = sqs.receive_message(QueueUrl=url)
        (message,) = got["Messages"]
        handle = message["ReceiptHandle"]
        assert len(handle) == 185 and handle.isalpha() and handle.islower()
        assert len(got["ResponseMetadata"]["RequestId"]) == 52
        sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)
        assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []


def test_kms_private_keys_are_made_when_first_used_and_then_work() -> None:
    # GIVEN the patch (moto alone makes a 2048-bit RSA key for every key, ~95 ms, symmetric ones included)
    moto_patches.lazy_kms_private_keys()
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.kms.models import kms_backends

    with mock_aws():
        kms = boto3.client("kms", region_name="us-east-1")
        # WHEN a symmetric key is made and used THEN it works and no private key was generated for it
        symmetric = kms.create_key()["KeyMetadata"]["KeyId"]
        blob = kms.encrypt(KeyId=symmetric, Plaintext=b"secret")["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"secret"
        backend = kms_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
        assert backend.keys[symmetric].private_key._key is None
        # AND an asymmetric key signs, verifies, and gives the public key that checks its signature
        signing = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="RSA_2048")["KeyMetadata"]["KeyId"]
        signed = kms.sign(KeyId=signing, Message=b"m", SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256")["Signature"]
        assert kms.verify(KeyId=signing, Message=b"m", Signature=signed,
                          SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256")["SignatureValid"]
        public = serialization.load_der_public_key(kms.get_public_key(KeyId=signing)["PublicKey"])
        assert isinstance(public, rsa.RSAPublicKey)
        public.verify(signed, b"m", padding.PKCS1v15(), hashes.SHA256())  # raises InvalidSignature otherwise


def test_service_models_and_names_come_from_one_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the patch, moto's model caches emptied, and botocore's service listing counted
    moto_patches.share_service_model_loader()
    from botocore.exceptions import ClientError
    from botocore.loaders import Loader
    from moto.core import utils

    utils.get_service_model.cache_clear()
    listed: set[tuple[int, str]] = set()  # (loader, model type): each loader lists once per type, then caches
    original = Loader.list_available_services

    def counted(self: Any, type_name: str) -> Any:
        listed.add((id(self), type_name))
        return original(self, type_name)

    monkeypatch.setattr(Loader, "list_available_services", counted)
    with mock_aws():
        # WHEN several services answer, errors included (the error path looks the service's name up)
        sqs = boto3.client("sqs", region_name="us-east-1")
        with pytest.raises(ClientError) as missing:
            sqs.get_queue_url(QueueName="nope")
        sm = boto3.client("secretsmanager", region_name="us-east-1")
        with pytest.raises(ClientError) as no_secret:
            sm.describe_secret(SecretId="nope")
        kms = boto3.client("kms", region_name="us-east-1")
        kms.create_key()
        assert kms.list_keys()["Keys"]
    # THEN the answers are moto's, and botocore's ~420 service directories were listed by three loaders, not
    # one per service model and per error: the clients' session, moto's backends' session, moto's models' loader
    assert missing.value.response["Error"]["Code"] in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
    assert no_secret.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert len({loader for loader, kind in listed if kind == "service-2"}) <= 3, listed
