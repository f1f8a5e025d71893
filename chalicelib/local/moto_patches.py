"""Fixes to moto's SQS for a long-running local cloud: memory that would otherwise grow forever.

moto keeps every receipt handle of every deleted message in a per-queue
`set` (`Queue.deleted_messages`), only so that deleting a message twice is
harmless; nothing ever prunes it, so the emulator grew ~6 KB per execution
(issue 10). The set is replaced by one that remembers the most recent
handles only: a consumer deletes within its visibility timeout, so an old
handle is never asked about again (and SQS itself refuses stale handles).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

RECENT_RECEIPTS = 20_000  # per queue: far more than are ever in flight (the outbox caps it at 100)


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
