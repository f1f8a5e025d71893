"""Action runner Lambda: runs one tenant action, and nothing else, under a role that grants nothing.

On AWS, tenant code must not run inside the worker Lambda, whose role reads
the database URL, the JWT signing key, the KMS data key and the queues. The
worker keeps the execution's lifecycle (claim, heartbeat, result, audit) and
invokes this function synchronously with what the action needs:

    {"execution_id": 7, "runner_type": "python3", "parameters": {...},
     "code": "..." | null, "entry_point": "hello.py" | null,
     "pack_url": "https://<presigned S3 GET of the pack archive>" | null,
     "timeout_s": 60, "max_output_bytes": 1048576,
     "context": {"api_url": ..., "token": <execution-scoped JWT>, ...}}

and stores the returned RunResult. The function's role may only write its own
log group: no S3 rights either, so pack files arrive as a presigned URL the
worker signs (valid for minutes, for one object). Its environment carries no
database URL and no bucket, and it is not in a VPC. The handler is thin:
parse, run with `chalicelib.runners` exactly as the worker would, return.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
import urllib.parse
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any

from chalicelib.core.errors import ValidationFailed
from chalicelib.observability import configure_logging
from chalicelib.runners import RunRequest, RunResult, runner_for

configure_logging()

MAX_PACK_BYTES = 256 * 1024 * 1024


def fetch_pack(url: str, dest: Path) -> Path:
    """Download the pack archive from its presigned HTTPS URL and unpack it under `dest`.

    tarfile's `data` filter refuses members that would land outside `dest`,
    links out of it and device files: the archive is not trusted here either.
    """
    if urllib.parse.urlsplit(url).scheme != "https":
        raise ValidationFailed("pack_url must be an https URL (a presigned S3 GET)")
    with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 - https checked above
        data = resp.read(MAX_PACK_BYTES + 1)
    if len(data) > MAX_PACK_BYTES:
        raise ValidationFailed("the pack archive is larger than the runner accepts")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(dest, filter="data")
    return dest


def run_request(event: dict[str, Any], pack_dir: Path | None) -> RunRequest:
    """The RunRequest the worker would have built, from the invocation's payload."""
    return RunRequest(
        execution_id=int(event["execution_id"]),
        runner_type=str(event["runner_type"]),
        parameters=dict(event.get("parameters") or {}),
        code=event.get("code"),
        entry_point=event.get("entry_point"),
        pack_dir=pack_dir,
        timeout_s=float(event.get("timeout_s", 600)),
        max_output_bytes=int(event.get("max_output_bytes", 1024 * 1024)),
        context=dict(event.get("context") or {}),
    )


def run(event: dict[str, Any], work_dir: Path) -> RunResult:
    """Fetch the pack (if any) into `work_dir`, then run the action to completion."""
    pack_url = event.get("pack_url")
    pack_dir = fetch_pack(str(pack_url), work_dir / "pack") if pack_url else None
    request = run_request(event, pack_dir)
    return runner_for(request.runner_type).run(request)


def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    """Lambda entry point: the RunResult as a dict (a refused request is a failed result, not a crash)."""
    with tempfile.TemporaryDirectory(prefix="attune-run-") as work:
        try:
            result = run(event, Path(work))
        except ValidationFailed as exc:
            result = RunResult(status="failed", exit_code=None, stdout="", stderr="", output=None,
                               error=exc.message, timed_out=False, pid=None, duration_s=0.0)
    return asdict(result)
