"""Fixes to moto for a long-running local cloud: memory that would otherwise grow forever, and callbacks.

Measured with tracemalloc in the emulator (`ATTUNE_MOTO_TRACEMALLOC`, see
`moto_server`) during the soak (bench/soak.py, `core.noop` executions, about
one SQS message delivered and deleted each), the emulator's RSS grew 2.1 KB
per execution (105 -> 129 MB over 10,000). Python's heap grew 2.0 KB per
delivered message (1.09 MB over 532 deliveries), held by two things:

- `BaseModel.__new__` appends EVERY model instance moto ever creates to its
  class's `instances_tracked` list (only for moto's `/moto-api/data.json`
  dashboard): each SQS message sent, and the deep copy `receive_message`
  makes of it for every delivery, stayed alive after deletion with its
  attributes, body and handles: 1.7 KB per delivered message.
  `track_model_instances_weakly` keeps the list's meaning (the live
  instances) without keeping them alive.
- `Queue.deleted_messages`: every receipt handle (185 characters) of every
  deleted message, only so that deleting twice is harmless; never pruned:
  0.3 KB per delivered message. `bound_sqs_deleted_receipts` remembers the
  most recent `RECENT_RECEIPTS` per queue.

With both, the soak's RSS grows 0.07 KB per execution over its last 3,000
(109.1 -> 109.3 MB), i.e. flat.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

# Per queue. A deleted handle is only asked about again by a retried delete, i.e. within the
# visibility timeout of its receive (30 s locally, ATTUNE_LOCAL_VISIBILITY_SECONDS): 30 s at
# 100 deletes/s on one queue (the soak runs ~40 executions/s, one delete each) is 3,000
# handles, ~0.9 MB at most. (At 20,000, ~6 MB a queue, the bound never engaged within a
# 10,000-execution soak.) A handle forgotten early costs only a ReceiptHandleIsInvalid on a
# duplicate delete, which the pollers log and ignore.
RECENT_RECEIPTS = 3_000


class RecentReceipts:
    """A set of strings holding at most `limit` of them, forgetting the oldest first."""

    def __init__(self, limit: int = RECENT_RECEIPTS) -> None:
        self.limit = limit
        self._items: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def add(self, item: str) -> None:
        """Remember `item` as the newest."""
        self._items[item] = None
        self._items.move_to_end(item)
        while len(self._items) > self.limit:
            self._items.popitem(last=False)

    def update(self, items: Iterable[str | None]) -> None:
        """Remember each of `items` (moto passes a message's handles, the current one possibly None)."""
        for item in items:
            if item is not None:
                self.add(item)

    def discard(self, item: str) -> None:
        """Forget `item` if remembered."""
        self._items.pop(item, None)

    def clear(self) -> None:
        """Forget everything (a purged queue)."""
        self._items.clear()


def bound_sqs_deleted_receipts(limit: int = RECENT_RECEIPTS) -> None:
    """Make every SQS queue moto creates from now on remember only its `limit` newest deleted receipts."""
    from moto.sqs.models import Queue

    if getattr(Queue, "_attune_bounded", False):
        return
    original = Queue.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.deleted_messages = RecentReceipts(limit)

    Queue.__init__ = __init__  # type: ignore[method-assign]
    Queue._attune_bounded = True  # type: ignore[attr-defined]


class _KeyedRef(weakref.ref):  # type: ignore[type-arg]
    """A weak reference that remembers the key it is filed under."""

    __slots__ = ("key",)
    key: int


class WeakInstances:
    """moto's per-model `instances_tracked` list, holding its instances weakly.

    moto only reads it to list the live models (`/moto-api/data.json`, and
    S3's `reset()` disposing of its keys); as a plain list it keeps every
    instance ever created alive. Here an instance leaves it when nothing else
    refers to it. Unhashable models are fine: entries are keyed by `id()`, and
    the weakref's callback removes an entry before its id can be reused.
    """

    def __init__(self, items: Iterable[object] = ()) -> None:
        self._refs: dict[int, _KeyedRef] = {}
        for item in items:
            self.append(item)

    def append(self, item: object) -> None:
        """Track `item` for as long as something else keeps it alive."""
        ref = _KeyedRef(item, self._forget)
        ref.key = id(item)
        self._refs[ref.key] = ref

    def _forget(self, ref: _KeyedRef) -> None:
        if self._refs.get(ref.key) is ref:
            del self._refs[ref.key]

    def __iter__(self) -> Iterator[object]:
        # A snapshot: the garbage collector may drop entries at any moment.
        alive = (ref() for ref in list(self._refs.values()))
        return iter([item for item in alive if item is not None])

    def __len__(self) -> int:
        return len(self._refs)


def track_model_instances_weakly() -> None:
    """Make moto's `BaseModel` track the instances it creates weakly (see `WeakInstances`).

    `BaseModel.__new__` itself is replaced, so model classes imported later
    (moto loads a service's models on its first request) are covered too, and
    so is the plain list moto's reset puts back.
    """
    from moto.core.common_models import BaseModel

    if getattr(BaseModel, "_attune_weak_instances", False):
        return

    def __new__(cls: Any, *args: Any, **kwargs: Any) -> Any:
        instance = object.__new__(cls)
        tracked = cls.instances_tracked
        if not isinstance(tracked, WeakInstances):
            tracked = cls.instances_tracked = WeakInstances(tracked)
        tracked.append(instance)
        return instance

    BaseModel.__new__ = __new__  # type: ignore[assignment, method-assign]
    BaseModel._attune_weak_instances = True  # type: ignore[attr-defined]


def fix_step_functions_callbacks() -> None:
    """Two fixes to moto's Step Functions task-token callbacks, so workflows behave as on AWS.

    - A `Retry` of a `waitForTaskToken` task re-sent the message with the SAME
      token, whose first outcome stayed recorded: every retry failed at once
      with the first failure, without waiting for its answer. Each attempt
      now gets a fresh token, as on AWS.
    - `SendTaskFailure` dropped its `cause` in server mode; it is passed on.
    """
    from moto.core.responses import EmptyResult
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_callback
    from moto.stepfunctions.responses import StepFunctionResponse

    callback = state_task_service_callback.StateTaskServiceCallback
    if getattr(callback, "_attune_fresh_tokens", False):
        return
    evaluate = callback._evaluate_with_timeout

    def evaluate_with_a_fresh_token(self: Any, env: Any) -> Any:
        context = env.states.context_object
        data = context.context_object_data
        if data.get("State", {}).get("RetryCount", 0) > 0 and "Task" in data:
            env.callback_pool_manager.add(context.update_task_token())
        return evaluate(self, env)

    def send_task_failure(self: Any) -> Any:
        self.stepfunction_backend.send_task_failure(
            self._get_param("taskToken"), error=self._get_param("error"), cause=self._get_param("cause"))
        return EmptyResult()

    callback._evaluate_with_timeout = evaluate_with_a_fresh_token  # type: ignore[method-assign]
    callback._attune_fresh_tokens = True  # type: ignore[attr-defined]
    StepFunctionResponse.send_task_failure = send_task_failure  # type: ignore[method-assign]


def cheap_sqs_receive() -> None:
    """Make moto's per-message retention check read one attribute instead of computing them all.

    Profiled under a steady load (bench/peers.py, py-spy on the emulator):
    `receive_message` asks, for every message it hands out, whether the
    message is still within its queue's retention period, through
    `get_queue_attributes(["MessageRetentionPeriod"])`, which builds the
    queue's whole attribute dict three times per name asked, and each build
    counts the visible, in-flight and delayed messages by scanning the queue
    (reading the clock per message): O(queue depth) per message received, a
    sixth of the emulator's CPU at a 100-deep work queue. The retention
    period is a plain attribute of the queue; the answer is the same.

    `send_message` builds that same dict for every message sent, only to read
    `ContentBasedDeduplication`, an attribute a standard queue does not have
    (another sixth): while a standard queue takes a message, its attribute
    dict is empty, which answers that question the same way. FIFO queues are
    left as they are.
    """
    from moto.core.utils import unix_time
    from moto.sqs.models import Queue, SQSBackend

    if getattr(SQSBackend, "_attune_cheap_retention", False):
        return
    sending = threading.local()
    attributes: Any = Queue.__dict__["attributes"].fget  # the property's getter (moto types it loosely)
    send_message = SQSBackend.send_message
    assert attributes is not None

    def queue_attributes(self: Any) -> Any:
        if getattr(sending, "standard", None) is self:
            return {}
        return attributes(self)

    def send(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        queue = self.get_queue(queue_name)
        sending.standard = None if queue.fifo_queue else queue
        try:
            return send_message(self, queue_name, *args, **kwargs)
        finally:
            sending.standard = None

    Queue.attributes = property(queue_attributes)  # type: ignore[assignment, method-assign]
    SQSBackend.send_message = send  # type: ignore[method-assign]

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention = int(self.get_queue(queue_name).message_retention_period)
        return bool(retention + message.sent_timestamp / 1000 > unix_time())

    SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]
        is_message_valid_based_on_retention_period)
    SQSBackend._attune_cheap_retention = True  # type: ignore[attr-defined]


RECEIPT_HANDLE_LENGTH = 185  # moto's (sqs/utils.generate_receipt_handle)


def cheap_random_strings() -> None:
    """Draw moto's random strings (request ids, SQS receipt handles) in one call instead of one per character.

    Profiled in-process (every SQS call of an execution, warm): each answer's
    52-character request id and each received message's 185-character receipt
    handle cost a `random.choice` call per character, a tenth of the
    emulator's work per ReceiveMessage. `choices(k=n)` draws from the same
    alphabet with the same (seeded) generator, in one call.
    """
    import string

    import moto.sqs.models as sqs_models
    import moto.sqs.utils as sqs_utils
    from moto.moto_api._internal import mock_random
    from moto.moto_api._internal.moto_random import MotoRandom

    if getattr(MotoRandom, "_attune_cheap_strings", False):
        return

    def get_random_string(self: Any, length: int = 20, include_digits: bool = True, lower_case: bool = False) -> str:
        pool = string.ascii_letters + (string.digits if include_digits else "")
        drawn = "".join(self.choices(pool, k=length))
        return drawn.lower() if lower_case else drawn

    def generate_receipt_handle() -> str:
        return "".join(mock_random.choices(string.ascii_lowercase, k=RECEIPT_HANDLE_LENGTH))

    MotoRandom.get_random_string = get_random_string  # type: ignore[method-assign]
    sqs_utils.generate_receipt_handle = generate_receipt_handle
    sqs_models.generate_receipt_handle = generate_receipt_handle  # type: ignore[attr-defined]
    MotoRandom._attune_cheap_strings = True  # type: ignore[attr-defined]


def prompt_sqs_long_polls() -> None:
    """A long poll wakes when a delayed or in-flight message comes due, not on the next whole second.

    moto's `receive_message` waits on its queue's condition for at most one
    second at a time; a send notifies it, but nothing does when a message's
    `DelaySeconds` or visibility timeout runs out, so such a message is
    handed out up to a second late. A retry's backoff is a delayed work
    message (lifecycle.retry), so T2.8's 2 s backoff measured 2.1-2.9 s; and
    a lost worker's message is redelivered late the same way. SQS itself
    hands it out when it comes due. Here the wait ends at the earliest due
    time among the queue's messages (or the caller's timeout, whichever is
    sooner); the scan runs only while no message is receivable.
    """
    from moto.core.utils import unix_time_millis
    from moto.sqs.models import Queue

    if getattr(Queue, "_attune_prompt_polls", False):
        return

    def wait_for_messages(self: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._messages_lock:
            while not self.messages:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                due = min((max(m.delayed_until, m.visible_at) for m in self._messages), default=None)
                if due is not None:
                    remaining = min(remaining, max(0.001, (due - unix_time_millis()) / 1000 + 0.001))
                self._messages_lock.wait(remaining)

    Queue.wait_for_messages = wait_for_messages  # type: ignore[method-assign]
    Queue._attune_prompt_polls = True  # type: ignore[attr-defined]


_CALLS: Counter[str] = Counter()
_CALLS_LOCK = threading.Lock()


def count_calls(path: Path) -> Callable[[], None]:
    """Count the emulator's API calls by service and action; the returned function writes them to `path` as JSON.

    What a benchmark needs to say how many SQS calls an execution costs
    (bench/peers.py signals the emulator before and after a steady load, see
    `moto_server`): one dict increment per request, nothing kept per message.
    """
    from moto.core.responses import BaseResponse

    counts, lock = _CALLS, _CALLS_LOCK  # one count per process, however many dumps ask for it
    if not getattr(BaseResponse, "_attune_counted", False):
        original = BaseResponse.call_action

        def call_action(self: Any) -> Any:
            with lock:
                counts[f"{self.service_name}:{self._get_action()}"] += 1
            return original(self)

        BaseResponse.call_action = call_action  # type: ignore[method-assign]
        BaseResponse._attune_counted = True  # type: ignore[attr-defined]

    def dump() -> None:
        with lock:
            snapshot = dict(counts)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(snapshot, sort_keys=True))
        os.replace(tmp, path)

    return dump


def cache_moto_module_list() -> None:
    """Make moto list its own service packages once, not on every request.

    Profiled (py-spy on the emulator, SQS send/receive/delete in a loop): moto's
    dispatcher asks `host in list_of_moto_modules()` for every request, which
    lists moto's package directory and stats each of its ~150 entries, under
    the dispatcher's global lock: 19% of the emulator's CPU. The packages
    installed do not change while the server runs; the answer is the same.
    """
    from moto import backends

    if getattr(backends.list_of_moto_modules, "_attune_cached", False):
        return
    modules = tuple(backends.list_of_moto_modules())

    def list_of_moto_modules() -> tuple[str, ...]:
        return modules

    list_of_moto_modules._attune_cached = True  # type: ignore[attr-defined]
    backends.list_of_moto_modules = list_of_moto_modules  # type: ignore[assignment]


def share_service_model_loader() -> None:
    """Make moto read botocore's service models through one loader, not a new one per model.

    moto's `_load_service_model` (its response serializer's and error
    handler's models, each cached once loaded) makes a new botocore Loader for
    every service and model type, and a new loader first lists every service
    it could load: stats of ~420 directories, 20 ms each time (measured). Its
    error path does the same through a new botocore Session per service that
    answers an error (`service_name_from_moto_package_name`: 50-100 ms). The
    first request to each service paid them, once per model type: a dozen
    times as `attune dev` provisions its stack (a not-found answer is how each
    resource is found missing) and its roles start. One loader lists them once
    and caches what it read, as botocore's own sessions do.
    """
    from moto.core import utils
    from moto.core.loaders import create_loader

    if getattr(utils._load_service_model, "_attune_cached", False):
        return
    lock = threading.Lock()
    shared: list[Any] = []
    names: dict[str, str] = {}

    def loader() -> Any:
        if not shared:
            shared.append(create_loader())
        return shared[0]

    def _load_service_model(service_name: str, model_name: str) -> dict[str, Any]:
        with lock:  # the loader's caches are plain dicts: one reader at a time
            model: dict[str, Any] = loader().load_service_model(service_name, model_name)
            return model

    def service_name_from_moto_package_name(moto_package_name: str) -> str:
        with lock:
            if not names:  # moto drops the hyphens of service names in its package names
                names.update({n.replace("-", ""): n for n in loader().list_available_services("service-2")})
        return names.get(moto_package_name, moto_package_name)

    _load_service_model._attune_cached = True  # type: ignore[attr-defined]
    utils._load_service_model = _load_service_model
    utils.service_name_from_moto_package_name = service_name_from_moto_package_name  # type: ignore[assignment]


class _LazyPrivateKey:
    """A KMS key's asymmetric private key, generated when first used (sign, verify, public key)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._key: Any = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        with self._lock:
            if self._key is None:
                self._key = self._make()
        return getattr(self._key, name)


def lazy_kms_private_keys() -> None:
    """Make moto generate a KMS key's RSA/ECC private key only when the key signs, verifies or is asked for it.

    moto's `Key.__init__` generates one for every key, a 2048-bit RSA key even
    for a symmetric one (`SYMMETRIC_DEFAULT`, all the platform makes): ~95 ms of
    the emulator's CPU each time, measured while `attune dev` starts, where
    every kept key is recreated (moto_state.restore) before moto serves and the
    stack's data key is looked up. Only `sign`, `verify` and `get_public_key`
    read it, and they get the same key on first use.
    """
    from moto.kms import models

    if getattr(vars(models)["generate_private_key"], "_attune_lazy", False):
        return
    eager = vars(models)["generate_private_key"]

    def generate_private_key(key_spec: str) -> Any:
        return _LazyPrivateKey(functools.partial(eager, key_spec))

    generate_private_key._attune_lazy = True  # type: ignore[attr-defined]
    vars(models)["generate_private_key"] = generate_private_key


def cache_response_method_names() -> None:
    """Make moto find a response class's action methods once per class, not by introspection per request.

    `BaseResponse.call_action` runs `inspect.getmembers` over the whole
    response class for every request to see whether the action is one of its
    methods (3% of the emulator's CPU, profiled as above). Response classes
    are not changed after start-up (every patch here is applied before the
    first request), so the answer per class is fixed.
    """
    from moto.core import responses

    found = vars(responses)["method_names_from_class"]
    if getattr(found, "_attune_cached", False):
        return
    names: dict[type, frozenset[str]] = {}

    def method_names_from_class(clazz: Any) -> frozenset[str]:
        known = names.get(clazz)
        if known is None:
            known = names[clazz] = frozenset(found(clazz))
        return known

    method_names_from_class._attune_cached = True  # type: ignore[attr-defined]
    vars(responses)["method_names_from_class"] = method_names_from_class


class _Body:
    """A request body read through, at most `length` bytes; `drain` reads what the application left."""

    def __init__(self, stream: Any, length: int) -> None:
        self._stream = stream
        self.left = length

    def read(self, size: int | None = -1) -> bytes:
        if self.left <= 0:
            return b""
        want = self.left if size is None or size < 0 else min(size, self.left)
        data = self._stream.read(want)
        self.left -= len(data)
        if not data:
            self.left = 0  # the client went away mid-body
        return bytes(data)

    def readline(self, size: int | None = -1) -> bytes:
        if self.left <= 0:
            return b""
        want = self.left if size is None or size < 0 else min(size, self.left)
        data = self._stream.readline(want)
        self.left -= len(data)
        if not data:
            self.left = 0
        return bytes(data)

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")

    def drain(self) -> bool:
        """Read and drop the unread rest; whether the whole body was read (the connection can serve another)."""
        while self.left > 0:
            if not self.read(64 * 1024):
                return False
        return True


NO_BODY_CODES = frozenset({204, 304})
# Off: with connections kept, about one 1000-webhook burst in six (bench/peers.py) had a few event
# messages that SendMessageBatch accepted but no poller handled until the relay re-sent them 30 s
# later (an answer lost on a reused connection, most likely a long poll's; not understood yet).
# Closing after every answer, as werkzeug does, showed none in twelve bursts, at the same
# throughput: the single write and TCP_NODELAY are what saved the time.
KEEP_ALIVE = False
# Except sends: a connection that only ever carries sends can lose nothing (a lost answer is a
# retried or re-sent message, a duplicate every consumer absorbs), and a send is on every hop's
# path, where opening a connection (and the emulator's thread for it) cost 0.5-1 ms a call
# (SendMessageBatch 50 ms apart, p50 4.1-4.3 -> 3.3-3.7 ms). queues.send_batch has a client of
# its own, so its pooled connections never carry a long poll.
KEEP_ALIVE_TARGETS = frozenset({"AmazonSQS.SendMessage", "AmazonSQS.SendMessageBatch"})


def keep_alive_request_handler(base: type[Any]) -> type[Any]:
    """`base` (moto's werkzeug request handler) serving many requests per connection, each in one write.

    Profiled (py-spy on the emulator under the local cloud's SQS traffic):
    werkzeug's development server answers `Connection: close` to every request
    (http.server cannot tell where an unread body ends), so every boto3 call
    opened a new TCP connection and the emulator started a thread for it, then
    polled the socket for 10 ms after answering; the status line and headers
    went out in one send and the body in another. Here the request body is
    read through a length-bounded reader, whatever the application left is
    drained, and the connection could be kept (HTTP/1.1, as AWS's endpoints do) when
    the body's end is known (a Content-Length, not chunked): off, see KEEP_ALIVE. The response is
    buffered and sent in one write with TCP_NODELAY. Errors are answered 500
    and the connection closed, as werkzeug does.
    """

    class KeepAliveRequestHandler(base):  # type: ignore[misc, valid-type]
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        wbufsize = 64 * 1024  # buffered: headers and body leave in one send, at flush

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            """Not formatted per request: werkzeug's logger is set to warnings only (moto_server.main)."""

        def run_wsgi(self) -> None:
            if self.headers.get("Expect", "").lower().strip() == "100-continue":
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                self.wfile.flush()
            environ = self.environ = self.make_environ()
            body: _Body | None = None
            if not environ.get("wsgi.input_terminated"):  # not chunked: the length says where it ends
                try:
                    length = int(environ.get("CONTENT_LENGTH") or 0)
                except ValueError:
                    length = -1
                if length >= 0:
                    body = _Body(environ["wsgi.input"], length)
                    environ["wsgi.input"] = body
            if body is None or not (KEEP_ALIVE or environ.get("HTTP_X_AMZ_TARGET") in KEEP_ALIVE_TARGETS):
                self.close_connection = True
            state: dict[str, Any] = {}

            def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                if exc_info and state.get("sent"):
                    raise exc_info[1].with_traceback(exc_info[2])
                state["status"], state["headers"] = status, headers
                return chunks.append

            chunks: list[bytes] = []
            try:
                result = self.server.app(environ, start_response)
                try:
                    chunks.extend(result)
                finally:
                    if hasattr(result, "close"):
                        result.close()
            except Exception as exc:  # noqa: BLE001 - what werkzeug does: log it, answer 500, close
                from werkzeug.exceptions import InternalServerError

                self.server.log("error", "Error on request: %r", exc)
                self.close_connection = True
                chunks.clear()
                result = InternalServerError()(environ, start_response)
                chunks.extend(result)
            if body is not None and not body.drain():
                self.close_connection = True
            self._respond(state["status"], state["headers"], b"".join(chunks))

        def _respond(self, status: str, headers: list[tuple[str, str]], data: bytes) -> None:
            code_str, _, msg = status.partition(" ")
            code = int(code_str)
            self.send_response(code, msg)
            names = set()
            for key, value in headers:
                if key.lower() == "connection":
                    continue  # ours to say
                self.send_header(key, value)
                names.add(key.lower())
            head = self.command == "HEAD" or code in NO_BODY_CODES or 100 <= code < 200
            if "content-length" not in names and not head:
                self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if data and not head:
                self.wfile.write(data)
            self.wfile.flush()

    return KeepAliveRequestHandler


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
SQS_JSON_TARGET = "AmazonSQS."


def direct_sqs_json(app: WsgiApp) -> WsgiApp:
    """`app` (moto's dispatcher) with SQS's JSON-protocol requests handed straight to moto's SQS handler.

    Every boto3 SQS call is a POST to `/` with `X-Amz-Target: AmazonSQS.<Action>`.
    moto's dispatcher finds the service for each request under one global
    lock (inferring it from the signature's credential scope), then runs it
    through a Flask app (request context, URL map, CORS, response object)
    whose only route for that path calls `SQSResponse.dispatch`. Measured in
    process (send, receive, delete in a loop, signed, with boto3's own cost
    included): 1.79 -> 1.45 ms a call; the emulator's lock is no longer held
    per SQS request. The handler is the same one, with the same request type
    (moto's, as its server builds it), so the signature check, the parsing,
    the backend and the errors moto answers are unchanged; a `ClientError`
    becomes the 400 moto's Flask wrapper makes of it. Anything else (the
    query protocol, other services, other paths) goes to `app` as before.
    """
    from http import HTTPStatus

    from botocore.exceptions import ClientError
    from moto.core.request import Request
    from moto.sqs.responses import SQSResponse

    class ServerRequest(Request):
        from_wsgi_server = True  # as moto's own server marks what it receives

    def sqs_or_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if environ.get("PATH_INFO") != "/" or environ.get("REQUEST_METHOD") != "POST" \
                or not target.startswith(SQS_JSON_TARGET):
            return app(environ, start_response)
        request = ServerRequest(environ)
        try:
            result = SQSResponse.dispatch(request, request.raw_url, dict(request.headers))
        except ClientError as exc:
            result = 400, {}, exc.response["Error"]["Message"]
        status, headers, content = result if len(result) == 3 else (200, {}, result)
        body = content.encode() if isinstance(content, str) else bytes(content or b"")
        code = int(status)
        start_response(f"{code} {HTTPStatus(code).phrase}",
                       [(name, str(value)) for name, value in headers.items()
                        if name.lower() not in ("status", "content-length")]
                       + [("Content-Length", str(len(body)))])
        return [body]

    return sqs_or_app
