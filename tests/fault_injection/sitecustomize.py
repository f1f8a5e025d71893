"""Test-only fault injection: the "killed between commit and send" switch.

Python imports `sitecustomize` at start-up from the first folder on its path
that has one, so a cloud started with this folder on `PYTHONPATH` (see
tests/integration/test_crash_between_commit_and_send.py) runs every process
with `outbox.publish` wrapped; production code carries no fault hook. While the
file named by `ATTUNE_FAULT_CRASH_BEFORE_SEND` exists, the next process that
publishes committed messages deletes it and dies before sending.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

CRASH_FILE_ENV = "ATTUNE_FAULT_CRASH_BEFORE_SEND"


def _arm(marker: Path) -> None:
    try:
        from chalicelib.pipeline import outbox
    except ImportError:  # a process of the cloud that is not ours (the emulator)
        return
    send = outbox.publish

    def publish(messages: list[outbox.Pending]) -> None:
        if messages and marker.exists():
            marker.unlink()
            logging.getLogger("attune.fault").error("fault injection: dying between commit and send")
            os._exit(137)
        send(messages)

    outbox.publish = publish  # before any module binds it with `from ... import publish`


if os.environ.get(CRASH_FILE_ENV):
    _arm(Path(os.environ[CRASH_FILE_ENV]))
