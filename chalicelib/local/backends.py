"""The local cloud's backends supervised like its roles: the AWS emulator and the embedded PostgreSQL.

A SIGKILLed moto used to stay dead while `/health` kept answering 200 and
webhooks kept answering 202 (their events waited for a full restart). Now
the supervisor's main loop calls `BackendWatch.check()`: a dead emulator is
started again on the same port with the same platform key, its restorable
state (KMS keys, pack objects: see `moto_state`) loaded, and the queues,
schedules and state machines provisioned again from infra/template.yaml;
the relay re-sends what was in flight on the lost queues (unacknowledged
outbox rows, within `ATTUNE_OUTBOX_RESEND_AFTER_SECONDS`). A dead
PostgreSQL is started again on its data dir; the roles' pools reconnect.

`/health` tells the truth meanwhile: the emulator beats as the component
`aws-emulator` only while it answers, and `/health` needs every expected
component's beat; without PostgreSQL `/health` cannot read beats at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from chalicelib.config import settings
from chalicelib.core.errors import AttuneError
from chalicelib.db import components
from chalicelib.db.pool import close_pool
from chalicelib.local import embedded_pg, moto_server

log = logging.getLogger(__name__)

EMULATOR = "aws-emulator"


@dataclass
class BackendWatch:
    """What the cloud started, and how to start each again."""

    data_dir: Path
    moto: moto_server.MotoServer | None
    pg: embedded_pg.EmbeddedPostgres | None
    restart_moto: Callable[[int], moto_server.MotoServer]
    reprovision: Callable[[], object]
    restarts: dict[str, int] = field(default_factory=lambda: {"moto": 0, "postgres": 0})
    _next_beat: float = 0.0

    def _pg_alive(self) -> bool:
        if self.pg is None or self.pg.pid is None:
            return True
        try:
            return bool(psutil.Process(self.pg.pid).status() != psutil.STATUS_ZOMBIE)
        except psutil.NoSuchProcess:
            return False

    def check(self) -> None:
        """Restart what died, and beat for the emulator while it serves. Called from the main loop."""
        if not self._pg_alive():
            log.error("PostgreSQL (pid %s) is gone; starting it again", self.pg.pid if self.pg else "?")
            close_pool()
            assert self.pg is not None
            self.pg = embedded_pg.restart(self.pg)
            self.restarts["postgres"] += 1
            log.info("PostgreSQL is back (pid %s)", self.pg.pid)
        if self.moto is not None and self.moto.process.poll() is not None:
            code = self.moto.process.returncode
            log.error("the AWS emulator exited (code %s); starting it again on port %d", code, self.moto.port)
            self.moto = self.restart_moto(self.moto.port)
            self.reprovision()
            self.restarts["moto"] += 1
            log.info("the AWS emulator is back (pid %s); resources provisioned again", self.moto.process.pid)
        now = time.monotonic()
        if self.moto is not None and now >= self._next_beat:
            self._next_beat = now + settings().heartbeat_seconds
            try:
                components.beat(EMULATOR, instance=f"moto:{self.moto.port}")
            except AttuneError as exc:  # PostgreSQL is down: /health is red anyway
                log.warning("could not record the emulator's heartbeat: %s", exc.message)
