"""Heartbeats of running roles, read by `GET /health`.

A role is ready once it beats; it is counted healthy while its last beat is
younger than three heartbeat periods, so a killed worker turns /health red
within seconds and green again when the supervisor restarts it.
"""

from __future__ import annotations

import os
from typing import Any

from chalicelib.config import settings
from chalicelib.db.pool import system_tx

UPSERT_BEAT = """
INSERT INTO attune.component (role, instance, pid, started, beat_at)
VALUES (%(role)s, %(instance)s, %(pid)s, now(), now())
ON CONFLICT (role, instance) DO UPDATE SET pid = EXCLUDED.pid, beat_at = now()
"""
DELETE_BEAT = "DELETE FROM attune.component WHERE role = %(role)s AND instance = %(instance)s"
LIVE_ROLES = """
SELECT role, count(*) AS instances, max(beat_at) AS last_beat
FROM attune.component
WHERE beat_at > now() - make_interval(secs => %(max_age)s)
GROUP BY role
"""


def beat(role: str, instance: str | None = None) -> None:
    """Record that this process is alive and ready in `role`."""
    with system_tx() as cur:
        cur.execute(
            UPSERT_BEAT,
            {"role": role, "instance": instance or f"{os.uname().nodename}:{os.getpid()}", "pid": os.getpid()},
        )


def leave(role: str, instance: str | None = None) -> None:
    """Remove this process's beat on graceful shutdown, so /health reflects it at once."""
    with system_tx() as cur:
        cur.execute(
            DELETE_BEAT,
            {"role": role, "instance": instance or f"{os.uname().nodename}:{os.getpid()}"},
        )


def health(expected_roles: list[str]) -> dict[str, Any]:
    """Which expected roles are live; `ok` only when all of them are."""
    max_age = 3 * settings().heartbeat_seconds + 1
    with system_tx() as cur:
        cur.execute(LIVE_ROLES, {"max_age": max_age})
        live = {row["role"]: row for row in cur.fetchall()}
    roles = {
        role: ({"status": "ready", "instances": live[role]["instances"]} if role in live else {"status": "down"})
        for role in expected_roles
    }
    return {"ok": all(r["status"] == "ready" for r in roles.values()), "roles": roles}
