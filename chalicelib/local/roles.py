"""The roles of the local cloud: what each process runs. Adding a role is adding an entry.

A role is queue bindings (each an SQS poller feeding a Lambda handler, the
local stand-in for an event-source mapping), and/or a `main` for what is not
queue-driven (the HTTP server, the scheduler). `attune dev` starts one
supervised process per role, restarts it when it dies, and expects every
role to beat before `GET /health` turns green. For example, the worker:

    register(Role(
        "worker",
        queues=(QueueBinding(queue="work", handler="functions.worker.app.handler",
                             batch_size=10, concurrency=4),),
        stop_grace_seconds=35,
    ))
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.local.sqs_poller import QueueBinding

__all__ = ["ROLES", "QueueBinding", "Role", "register"]


@dataclass(frozen=True)
class Role:
    """One process of the local cloud.

    `main` is a dotted path (`pkg.module:function`) to `function(stop, ready)`,
    two `threading.Event`s: it sets `ready` once it serves and returns soon
    after `stop` is set. `stop_grace_seconds` is how long the supervisor waits
    after SIGTERM (in-flight batches finish) before SIGKILL.
    """

    name: str
    queues: tuple[QueueBinding, ...] = ()
    main: str | None = None
    stop_grace_seconds: float = 10.0

    def __post_init__(self) -> None:
        if not self.queues and self.main is None:
            raise ValueError(f"role {self.name} has neither queues nor a main")


ROLES: dict[str, Role] = {}


def register(role: Role) -> Role:
    """Add a role; a name registered twice is a mistake, not an override."""
    if role.name in ROLES:
        raise ValueError(f"role {role.name} is already registered")
    ROLES[role.name] = role
    return role


register(Role("api", main="chalicelib.local.api_server:serve"))
register(Role("scheduler", main="chalicelib.local.scheduler:serve"))
register(
    Role(
        "rules",
        queues=(QueueBinding(queue="events", handler="functions.rules.app.handler", batch_size=10, concurrency=2),),
    )
)
register(Role("relay", main="chalicelib.pipeline.relay:serve"))
# Timer fires arrive a second or two before they are due and are held until then, so the
# role needs enough pollers that held batches never keep a due fire waiting on the queue.
register(
    Role(
        "timers",
        queues=(QueueBinding(queue="timer-fires", handler="functions.timers.app.fire_handler", concurrency=16),),
        stop_grace_seconds=10,
    )
)
# The worker takes batches of 10 (few SQS calls per execution) and returns once each
# record's action has started, so a slow action never holds the next batch; at most
# ATTUNE_WORKER_CONCURRENCY actions run at once. Its main drains in-flight actions on
# SIGTERM (T3.30); past the grace, it stops what is left and records it as failed.
register(
    Role(
        "worker",
        queues=(
            QueueBinding(queue="work", handler="functions.worker.app.poller_handler", batch_size=10, concurrency=2),
        ),
        main="chalicelib.worker.service:serve",
        stop_grace_seconds=60,
    )
)
# Workflows: the steps the state machines send (render, request, finish) and the
# callbacks that answer their task tokens. Each message is short database work plus
# a Step Functions call, so a few pollers keep 100-item fan-outs moving.
register(
    Role(
        "workflow",
        queues=(
            QueueBinding(queue="workflow-tasks", handler="functions.workflow.app.handler", batch_size=10,
                         concurrency=4),
            QueueBinding(queue="workflow-callbacks", handler="functions.workflow.app.callback_handler",
                         batch_size=10, concurrency=2),
        ),
        stop_grace_seconds=15,
    )
)
# Notifications (docs/notifications.md), as on AWS: `ws` is API Gateway's WebSocket API (client
# sockets on ATTUNE_WS_PORT, calling app.py's websocket handlers, and the @connections API);
# `notifier` is the Lambda fed by the notifications queue, posting to `ws` over @connections.
# Two processes, so either can be killed and restarted alone. The notifier keeps each entity's
# changes in order however many pollers run, so it runs several: a post waits on the gateway,
# and a batch's records are delivered one after the other.
register(Role("ws", main="chalicelib.local.ws_gateway:serve", stop_grace_seconds=5))
register(
    Role(
        "notifier",
        queues=(QueueBinding(queue="notifications", handler="functions.notifier.app.handler", batch_size=5,
                             concurrency=4),),
        stop_grace_seconds=10,
    )
)
