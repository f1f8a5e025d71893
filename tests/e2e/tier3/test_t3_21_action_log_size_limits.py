"""T3.21 Action log size limits: an action printing 10 MB keeps the first 1 MiB, marked as cut, and succeeds.

The output is incompressible (base64 of a SHA-256 chain) so that the stored
row's size, read at rest with `pg_column_size`, is the size of what was kept
and not of what PostgreSQL's compression made of it; and deterministic, so
the test recomputes the exact prefix the worker should have kept. The
worker's peak RSS (VmHWM) is read before and after an action printing 50 MB:
holding what it printed (as bytes, then text, then JSON) would raise it by
far more than the bound, which stands well above what the rest of the shared
cloud (other tenants' timers) adds meanwhile.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import psycopg
import pytest

from tests.e2e.client import Cloud
from tests.e2e.flow import action_files, poll, register_pack, run_action, unique_ref

MIB = 1024 * 1024
PRINTED = 10 * MIB
MARKER = "... (output truncated)"
# The memory check prints more (50 MB): after a warm-up run that already kept (and stored) 1 MiB, it
# adds next to nothing to the worker's peak, while holding what it printed would add 50 MB at the very
# least. The bound leaves room for what the rest of the shared cloud (other tenants' timers) runs meanwhile.
MEMORY_CHECK_PRINTED = 50 * MIB
WORKER_PEAK_GROWTH_BOUND = 25 * MIB

LOUD_PY = """\
import base64, hashlib, sys


def chunk(seed, i):
    digest = b"".join(hashlib.sha256(f"{seed}-{i}-{j}".encode()).digest() for j in range(96))
    return base64.b64encode(digest)  # 4096 bytes, incompressible


def run(seed, size):
    out = sys.stdout.buffer
    written = 0
    i = 0
    while written < size:
        data = chunk(seed, i)
        out.write(data)
        written += len(data)
        i += 1
    out.flush()
    return {"printed": written}
"""


def _expected_prefix(seed: str, size: int) -> str:
    """What the action prints first, as the worker should have kept it."""
    parts, length, i = [], 0, 0
    while length < size:
        digest = b"".join(hashlib.sha256(f"{seed}-{i}-{j}".encode()).digest() for j in range(96))
        data = base64.b64encode(digest).decode()
        parts.append(data)
        length += len(data)
        i += 1
    return "".join(parts)[:size]


def _peak_rss(cloud: Cloud) -> tuple[int, int]:
    """(the worker's pid, its peak resident set size in bytes)."""
    assert cloud.log_path is not None, "this test needs the cloud the suite starts (its data dir)"
    pid = int(json.loads((cloud.log_path.parent / "cloud.json").read_text())["roles"]["worker"])
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return pid, int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


def test_ten_megabytes_of_output_are_cut_at_one_mebibyte(cloud: Cloud) -> None:
    if cloud.database_url is None:
        pytest.fail("the local cloud did not publish its database URL in cloud.json")
    # GIVEN an action that prints 10 MB of incompressible text to stdout, then returns how much it printed
    user = cloud.register("t321")
    ref = unique_ref("t321")
    params = {"seed": {"type": "string", "required": True}, "size": {"type": "integer", "required": True}}
    register_pack(user, ref, action_files("loud", "python3", LOUD_PY, params))
    poll(lambda: cloud.http.get("/health").status_code == 200, "the cloud to be healthy", cloud)
    # (a warm-up run that is cut too, so the worker's peak already holds the cost of keeping 1 MiB)
    warm_up = run_action(user, f"{ref}.loud", {"seed": "warm-up", "size": 2 * MIB})
    assert warm_up["status"] == "succeeded", warm_up["result"]["error"]
    seed = unique_ref("seed")

    # WHEN it is executed
    execution = run_action(user, f"{ref}.loud", {"seed": seed, "size": PRINTED})

    # THEN it succeeds: the big output did not fail it, and the action was never blocked on a full pipe
    assert execution["status"] == "succeeded", {k: v for k, v in execution.items() if k != "result"}
    result = execution["result"]
    assert result["exit_code"] == 0 and result["error"] is None, result["error"]
    assert result["output"] == {"printed": PRINTED}
    # AND stdout is the first 1 MiB exactly, followed by the truncation marker
    stdout = result["stdout"]
    assert stdout.endswith(MARKER), stdout[-100:]
    kept = stdout[: -len(MARKER)].rstrip("\n")
    assert len(kept.encode()) == MIB, len(kept.encode())
    assert kept == _expected_prefix(seed, MIB)
    assert result["stderr"] == ""

    # AND the stored row is about the limit's size, not the 10 MB printed
    with psycopg.connect(cloud.database_url) as conn:
        row = conn.execute(
            "SELECT pg_column_size(result), octet_length(result::text) FROM attune.execution "
            "WHERE id = %s AND tenant_id = %s",
            (execution["id"], user.tenant_id),
        ).fetchone()
    assert row is not None
    stored, text_size = row
    assert MIB <= text_size <= MIB + 4096, text_size
    assert 0.9 * MIB <= stored <= 1.1 * MIB, stored

    # AND the worker's memory stays bounded: while an action prints 50 MB its peak grows by far less
    worker, peak_before = _peak_rss(cloud)
    big = run_action(user, f"{ref}.loud", {"seed": seed, "size": MEMORY_CHECK_PRINTED})
    assert big["status"] == "succeeded" and big["result"]["output"] == {"printed": MEMORY_CHECK_PRINTED}
    assert big["result"]["stdout"].endswith(MARKER) and len(big["result"]["stdout"]) <= MIB + len(MARKER) + 1
    pid_after, peak_after = _peak_rss(cloud)
    assert pid_after == worker, "the worker was restarted while the action ran"
    assert peak_after - peak_before < WORKER_PEAK_GROWTH_BOUND, (peak_before, peak_after)
