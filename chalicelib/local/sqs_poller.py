"""The SQS -> Lambda event-source mapping, for the local cloud and long-lived workers.

moto and LocalStack (without Docker) never invoke a function for a queue, so
this does what Lambda's poller does: long-poll the queue, hand the handler a
real SQS event batch, delete what succeeded, and leave what failed (reported
through `batchItemFailures`, or the whole batch when the handler raises) to
come back after the visibility timeout and, after `maxReceiveCount` receives,
land in the DLQ. The same handler code therefore runs unchanged in Lambda.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import logging
import pkgutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from chalice.local import LambdaContext

from chalicelib.aws import names
from chalicelib.aws.clients import client
from chalicelib.config import settings

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]
MAX_RECEIVE = 10
ERROR_BACKOFF_SECONDS = 1.0
# Handled messages wait this long to be deleted together (DeleteMessageBatch takes 10): at a modest
# rate each receive brings one message, and one delete call per message was a third of the
# emulator's calls. A delete that comes late only risks a redelivery, which every handler absorbs.
# The delete is off every execution's path, so waiting longer (0.2 s, was 0.05) costs no latency;
# it only takes fewer, fuller calls (a sequential webhook's two deletes share one call with the next's).
DELETE_LINGER_SECONDS = 0.2
# While the queue has no backlog, this many of a poller's threads wait in a long poll; the others
# wait their turn (see SqsPoller._await_turn).
IDLE_RECEIVERS = 2
# A thread joins the others in a long poll this long after one of them received a batch that was not full.
REPOLL_PAUSE_SECONDS = 0.01


@dataclass(frozen=True)
class QueueBinding:
    """A role's declaration that `handler` consumes the stack's queue `queue`.

    `queue` is the logical name (`work`, `events`, ...), resolved with
    `chalicelib.aws.names.queue_name`; `handler` is a dotted path to a Lambda
    handler `(event, context)`. `wait_seconds` bounds how long a stop waits for
    an idle long poll; `timeout_seconds` is the context's remaining time.
    """

    queue: str
    handler: str
    batch_size: int = 10
    concurrency: int = 1
    wait_seconds: int = 5
    timeout_seconds: int = 900

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= MAX_RECEIVE:
            raise ValueError(f"batch_size must be 1..{MAX_RECEIVE}, got {self.batch_size}")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not 0 <= self.wait_seconds <= 20:
            raise ValueError("wait_seconds must be 0..20 (SQS long-poll limit)")


def resolve_handler(dotted: str) -> Handler:
    """Import `pkg.module.func` (or `pkg.module:func`) and return the callable."""
    found = pkgutil.resolve_name(dotted)
    if not callable(found):
        raise TypeError(f"{dotted} is not callable")
    return found  # type: ignore[no-any-return]


def _message_attributes(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """SQS API message attributes in Lambda's camelCase event shape."""
    out: dict[str, Any] = {}
    for name, value in attrs.items():
        item: dict[str, Any] = {
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value.get("DataType", "String"),
        }
        if "StringValue" in value:
            item["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            item["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
        out[name] = item
    return out


def to_record(message: Mapping[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One received SQS message as the record Lambda would put in the event."""
    body = message.get("Body", "")
    record = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": body,
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": _message_attributes(message.get("MessageAttributes", {})),
        "md5OfBody": message.get("MD5OfBody")
        or hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def failed_ids(response: Any, message_ids: list[str]) -> set[str]:
    """The message ids to keep, per Lambda's partial-batch rules.

    A malformed response (an item without a known `itemIdentifier`) fails the
    whole batch, as Lambda does.
    """
    if not isinstance(response, Mapping) or not response.get("batchItemFailures"):
        return set()
    failures = response["batchItemFailures"]
    ids: set[str] = set()
    for item in failures if isinstance(failures, list) else [None]:
        ident = item.get("itemIdentifier") if isinstance(item, Mapping) else None
        if not ident or ident not in message_ids:
            log.error("malformed batchItemFailures %r: the whole batch fails", failures)
            return set(message_ids)
        ids.add(ident)
    return ids


class SqsPoller:
    """`concurrency` threads, each receiving up to `batch_size` messages and running the handler.

    `stop()` lets each thread finish its in-flight batch; messages received
    after the stop was asked for are released at once (visibility 0) instead of
    waiting out their timeout. A batch whose handler outlives half the queue's
    visibility timeout has its visibility extended until the handler returns.
    """

    def __init__(
        self,
        binding: QueueBinding,
        *,
        handler: Handler | None = None,
        queue_url: str | None = None,
    ) -> None:
        self.binding = binding
        self._handler = handler
        self._queue_url = queue_url
        self._queue_arn = ""
        self._visibility = 30
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.batches = 0
        self._done: list[dict[str, Any]] = []  # handled, waiting to be deleted in one batch
        self._done_lock = threading.Lock()
        self._done_waiting = threading.Event()
        # Batches whose handler runs, by number: (their messages, when their visibility is next extended).
        self._running: dict[int, tuple[list[dict[str, Any]], float]] = {}
        self._running_lock = threading.Condition()
        self._batch_ids = itertools.count()
        self._turn = threading.Condition()  # guards the three below
        self._in_receive = 0  # threads inside a ReceiveMessage call now
        self._backlog = False  # the last receive brought a full batch
        self._last_batch_at = 0.0  # when a receive last brought messages (time.monotonic)

    @property
    def queue_url(self) -> str:
        """The bound queue's URL (looked up on start)."""
        if self._queue_url is None:
            raise RuntimeError("poller not started")
        return self._queue_url

    def start(self) -> None:
        """Resolve the handler and queue, then start the polling threads."""
        if self._handler is None:
            self._handler = resolve_handler(self.binding.handler)
        sqs = client("sqs")
        if self._queue_url is None:
            self._queue_url = sqs.get_queue_url(
                QueueName=names.queue_name(self.binding.queue)
            )["QueueUrl"]
        attrs = sqs.get_queue_attributes(
            QueueUrl=self._queue_url, AttributeNames=["QueueArn", "VisibilityTimeout"]
        )["Attributes"]
        self._queue_arn = attrs["QueueArn"]
        # Received messages are held for at most the local visibility (30 s by default), not the
        # queue's own (which Lambda needs to exceed the function's timeout, e.g. 960 s for work):
        # the keeper extends it while a handler runs, so a poller that dies frees its messages
        # within seconds instead of minutes.
        self._visibility = min(int(attrs.get("VisibilityTimeout", 30)), settings().local_visibility_seconds)
        for i in range(self.binding.concurrency):
            thread = threading.Thread(
                target=self._run, name=f"sqs-{self.binding.queue}-{i}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        threading.Thread(target=self._delete_lingering, name=f"sqs-{self.binding.queue}-delete", daemon=True).start()
        threading.Thread(target=self._keep_invisible, name=f"sqs-{self.binding.queue}-keeper", daemon=True).start()
        log.info("polling %s with %s (batch %d, %d threads)", self.binding.queue,
                 self.binding.handler, self.binding.batch_size, self.binding.concurrency)

    def alive(self) -> bool:
        """Whether every polling thread still runs (a dead one means the role must restart)."""
        return all(t.is_alive() for t in self._threads)

    def stop(self, timeout: float | None = None) -> bool:
        """Ask the threads to stop and wait; True when all finished within `timeout`."""
        self._stop.set()
        with self._turn:
            self._turn.notify_all()  # threads waiting their turn see the stop
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(remaining)
        try:
            self._flush_deletes()
        except (BotoCoreError, ClientError) as exc:  # they come back after the visibility timeout
            log.warning("could not delete handled messages from %s: %s", self.binding.queue, exc)
        self._done_waiting.set()  # the lingering deleter sees the stop and ends
        with self._running_lock:
            self._running_lock.notify_all()  # and so does the keeper, once no handler runs
        return not any(t.is_alive() for t in self._threads)

    def _run(self) -> None:
        while self._await_turn():
            try:
                self._handle(self._receive())
            except (BotoCoreError, ClientError) as exc:
                log.warning("receiving from %s failed: %s", self.binding.queue, exc)
                self._stop.wait(ERROR_BACKOFF_SECONDS)

    def _await_turn(self) -> bool:
        """Wait until this thread's long poll would take something sooner than the ones already waiting.

        Nobody in a long poll, or a backlog (the last receive was a full batch):
        at once. Otherwise a long poll started now takes nothing sooner, since
        a waiting one receives the next message the moment it is sent, and it
        costs a ReceiveMessage's client and emulator work. So, while the queue
        is quiet, IDLE_RECEIVERS threads wait in one and the rest wait here
        (16 timer-fire pollers made 16 long polls every 5 s at idle), and a
        thread joins them no sooner than REPOLL_PAUSE_SECONDS after one
        received a batch, so that its receive does not land in the busiest
        moment of the execution just received (its claim, its runner's start,
        its next hop's send), which this process and the emulator share two
        cores with. The thread's place in the long poll is taken here, under
        the lock (False: the poller stops), so waiting threads woken together
        cannot all see a free place and all go.
        """
        with self._turn:
            while not self._stop.is_set():
                if self._backlog or self._in_receive == 0:
                    break
                if self._in_receive >= IDLE_RECEIVERS:
                    self._turn.wait()
                    continue
                wait = self._last_batch_at + REPOLL_PAUSE_SECONDS - time.monotonic()
                if wait <= 0:
                    break
                self._turn.wait(wait)
            else:
                return False
            self._in_receive += 1
            return True

    def _receive(self) -> list[dict[str, Any]]:
        """One ReceiveMessage, in the place in the long poll that _await_turn took; the place is given back after."""
        messages: list[dict[str, Any]] = []
        try:
            resp = client("sqs").receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=self.binding.batch_size,
                WaitTimeSeconds=self.binding.wait_seconds,
                VisibilityTimeout=self._visibility,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages = resp.get("Messages", [])
        finally:
            with self._turn:
                self._in_receive -= 1
                self._backlog = len(messages) >= self.binding.batch_size
                if messages:
                    self._last_batch_at = time.monotonic()
                self._turn.notify_all()
        return messages

    def _handle(self, messages: list[dict[str, Any]]) -> None:
        """Process a received batch, or release it once stopping."""
        if not messages:
            return
        if self._stop.is_set():
            self._release(messages)
        else:
            self.process(messages)

    def process(self, messages: list[dict[str, Any]]) -> None:
        """Run the handler on one batch and delete the records it did not report as failed."""
        assert self._handler is not None
        region = settings().aws_region
        event = {"Records": [to_record(m, self._queue_arn, region) for m in messages]}
        ids = [m["MessageId"] for m in messages]
        context = LambdaContext(
            function_name=f"{settings().stack_name}-{self.binding.queue}-local",
            memory_size=1024,
            max_runtime_ms=self.binding.timeout_seconds * 1000,
        )
        self.batches += 1
        batch = next(self._batch_ids)
        with self._running_lock:
            self._running[batch] = (messages, time.monotonic() + self._keep_period())
        try:
            response = self._handler(event, context)
        except Exception:  # a handler error fails the batch, as in Lambda
            log.exception("handler %s failed on a batch of %d from %s; it will be retried",
                          self.binding.handler, len(messages), self.binding.queue)
            return
        finally:
            with self._running_lock:
                self._running.pop(batch, None)
                if self._stop.is_set():
                    self._running_lock.notify_all()  # the keeper may end now
        keep = failed_ids(response, ids)
        if keep:
            log.info("%d of %d messages from %s failed; they return after the visibility "
                     "timeout", len(keep), len(ids), self.binding.queue)
        done = [m for m in messages if m["MessageId"] not in keep]
        self._delete(done)

    def _keep_period(self) -> float:
        return max(1.0, self._visibility / 3)  # two chances to extend before it would lapse

    def _keep_invisible(self) -> None:
        """Extend the visibility of batches whose handler runs long, so they are not redelivered.

        Lambda never needs this (a function's timeout is at most the queue's
        visibility timeout); a long-lived poller does, or a long action would
        run twice. Quick handlers finish before their first extension. One
        thread per poller watches every running batch (a thread per batch cost
        a thread start and join on every receive); it ends once the poller is
        stopped and no handler runs any more.
        """
        while True:
            with self._running_lock:
                if self._stop.is_set() and not self._running:
                    return
                now = time.monotonic()
                due = [(batch, messages) for batch, (messages, at) in self._running.items() if at <= now]
                for batch, messages in due:
                    self._running[batch] = (messages, now + self._keep_period())
                if not due:
                    nearest = min((at for _, at in self._running.values()), default=now + self._keep_period())
                    self._running_lock.wait(max(0.01, nearest - now))
                    continue
            for _, messages in due:
                try:
                    client("sqs").change_message_visibility_batch(
                        QueueUrl=self.queue_url,
                        Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"],
                                  "VisibilityTimeout": self._visibility}
                                 for i, m in enumerate(messages)],
                    )
                except (BotoCoreError, ClientError) as exc:
                    log.warning("could not extend visibility on %s: %s", self.binding.queue, exc)

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        """Queue handled messages for deletion: at once when ten wait, else within DELETE_LINGER_SECONDS."""
        if not messages:
            return
        with self._done_lock:
            self._done += messages
            full = len(self._done) >= MAX_RECEIVE
        if full:
            self._flush_deletes()
        else:
            self._done_waiting.set()

    def _delete_lingering(self) -> None:
        while not self._stop.is_set():
            self._done_waiting.wait()
            self._done_waiting.clear()
            self._stop.wait(DELETE_LINGER_SECONDS)
            try:
                self._flush_deletes()
            except (BotoCoreError, ClientError) as exc:  # they come back after the visibility timeout
                log.warning("could not delete handled messages from %s: %s", self.binding.queue, exc)

    def _flush_deletes(self) -> None:
        while True:
            with self._done_lock:
                batch, self._done = self._done[:MAX_RECEIVE], self._done[MAX_RECEIVE:]
            if not batch:
                return
            self._delete_now(batch)

    def _delete_now(self, messages: list[dict[str, Any]]) -> None:
        resp = client("sqs").delete_message_batch(
            QueueUrl=self.queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                     for i, m in enumerate(messages)],
        )
        for failure in resp.get("Failed", []):
            log.warning("could not delete a message from %s: %s", self.binding.queue,
                        failure.get("Message", failure))

    def _release(self, messages: list[dict[str, Any]]) -> None:
        client("sqs").change_message_visibility_batch(
            QueueUrl=self.queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                     for i, m in enumerate(messages)],
        )
