"""One role process of the local cloud: `python -m chalicelib.local.role <name>`.

It starts the role's pollers and main, beats `components.beat(role)` every
`heartbeat_seconds` once they are ready (that is what turns /health green),
and on SIGTERM/SIGINT stops taking work, lets in-flight batches finish,
removes its beat and exits 0. It exits non-zero when a part of it died, so
the supervisor restarts it; and it stops by itself if the supervisor is gone,
so a killed supervisor leaves nothing running.
"""

from __future__ import annotations

import logging
import os
import pkgutil
import signal
import sys
import threading

from chalicelib.config import settings
from chalicelib.core.errors import AttuneError
from chalicelib.db import components
from chalicelib.db.pool import close_pool
from chalicelib.local.roles import ROLES, Role
from chalicelib.local.sqs_poller import SqsPoller
from chalicelib.observability import configure_logging
from chalicelib.stopping import StopSignal, watch_signals

log = logging.getLogger("chalicelib.local.role")

READY_TIMEOUT_SECONDS = 120.0


class RoleProcess:
    """The running parts of one role and the loop that watches and announces them."""

    def __init__(self, role: Role) -> None:
        self.role = role
        self.stop = StopSignal(role.stop_grace_seconds)
        self.ready = threading.Event()
        self.pollers = [SqsPoller(binding) for binding in role.queues]
        self.main_thread: threading.Thread | None = None
        self.parent = os.getppid()

    def _run_main(self) -> None:
        assert self.role.main is not None
        try:
            pkgutil.resolve_name(self.role.main)(self.stop, self.ready)
        except Exception:  # the watch loop sees the dead thread and exits non-zero
            log.exception("role %s: main %s failed", self.role.name, self.role.main)

    def start(self) -> None:
        """Start pollers, then main; readiness is main's to announce (pollers are ready at once)."""
        for poller in self.pollers:
            poller.start()
        if self.role.main is None:
            self.ready.set()
            return
        self.main_thread = threading.Thread(target=self._run_main, name=f"{self.role.name}-main")
        self.main_thread.start()

    def broken(self) -> str | None:
        """Why the role can no longer work, if it cannot."""
        if self.main_thread is not None and not self.main_thread.is_alive() and not self.stop.is_set():
            return "main stopped"
        if not all(p.alive() for p in self.pollers):
            return "a poller thread died"
        if os.getppid() != self.parent:
            return "the supervisor is gone"
        return None

    def beat(self) -> None:
        """Record liveness; a database hiccup is logged, the next beat retries."""
        try:
            components.beat(self.role.name)
        except AttuneError as exc:
            log.warning("role %s: heartbeat failed: %s", self.role.name, exc.message)

    def watch(self) -> int:
        """Wait for ready, then beat until stopped or broken; returns the exit code."""
        waited = 0.0
        while not self.ready.wait(0.1):
            waited += 0.1
            reason = self.broken()
            if self.stop.is_set() or reason or waited > READY_TIMEOUT_SECONDS:
                if not self.stop.is_set():
                    log.error("role %s never became ready: %s", self.role.name, reason or "timeout")
                    return 1
                return 0
        log.info("role %s ready", self.role.name)
        period = settings().heartbeat_seconds
        while not self.stop.is_set():
            self.beat()
            if self.stop.wait(period):
                break
            reason = self.broken()
            if reason:
                log.error("role %s: %s; exiting", self.role.name, reason)
                return 0 if reason == "the supervisor is gone" else 1
        return 0

    def shutdown(self) -> None:
        """Stop taking work, let in-flight work finish, then leave the health table."""
        self.stop.set()
        grace = self.role.stop_grace_seconds
        for poller in self.pollers:
            if not poller.stop(timeout=grace):
                log.warning("role %s: a %s batch is still running", self.role.name,
                            poller.binding.queue)
        if self.main_thread is not None:
            self.main_thread.join(grace)
        try:
            components.leave(self.role.name)
        except AttuneError as exc:
            log.warning("role %s: could not remove its heartbeat: %s", self.role.name, exc.message)
        close_pool()


def _configure_logging() -> None:
    configure_logging()
    logging.getLogger("botocore").setLevel(logging.WARNING)


def run_task(dotted: str) -> int:
    """Run the function `pkg.module:function` once, logging as a role does; 0 when it returned, 1 when it raised."""
    _configure_logging()
    try:
        pkgutil.resolve_name(dotted)()
    except Exception:
        log.exception("%s failed", dotted)
        return 1
    return 0


def run(name: str) -> int:
    """Run role `name` until SIGTERM/SIGINT; the process exit code."""
    _configure_logging()
    role = ROLES.get(name)
    if role is None:
        log.error("unknown role %r (known: %s)", name, ", ".join(sorted(ROLES)))
        return 2
    proc = RoleProcess(role)

    def on_signal(signum: int) -> None:  # on the signal watcher's thread, never in the handler
        log.info("role %s: %s received, stopping", name, signal.Signals(signum).name)
        proc.stop.set()

    watch_signals(on_signal)
    code = 1
    try:
        proc.start()
        code = proc.watch()
    except Exception:  # a role that cannot start is restarted by the supervisor
        log.exception("role %s failed", name)
        code = 1
    finally:
        proc.shutdown()
    log.info("role %s stopped (exit %d)", name, code)
    return code


if __name__ == "__main__":
    sys.exit(run(sys.argv[1] if len(sys.argv) > 1 else ""))
