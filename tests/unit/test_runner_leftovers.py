"""The runner function's scrub: what an action leaves in a warm Lambda environment is gone before the next one.

Run in a child interpreter (it makes itself a subreaper and reaps its children,
which the test process must not), with a /tmp of its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from chalicelib.runners import leftovers

SCENARIO = r"""
import json, subprocess, sys, time
from pathlib import Path
from chalicelib.runners import leftovers

tmp = Path(sys.argv[1])
(tmp / "runtime-file").write_text("the runtime's own")
before = subprocess.Popen(["sleep", "300"])  # a process of the environment itself (an extension, say)
baseline = leftovers.snapshot(tmp)
# An "action": a daemon that double-forks out of its session, and a file outside its work dir.
subprocess.run(["bash", "-c", "setsid bash -c 'echo $$ > %s/daemon.pid; exec sleep 300' & disown; sleep 0.2"
                % tmp], check=True)
(tmp / "left-behind").mkdir()
(tmp / "left-behind" / "secret.txt").write_text("tenant A's")
deadline = time.monotonic() + 5
while not (tmp / "daemon.pid").exists() and time.monotonic() < deadline:
    time.sleep(0.02)
daemon = int((tmp / "daemon.pid").read_text())
done = leftovers.scrub(baseline)
print(json.dumps({"daemon": daemon, "before": before.pid, "killed": done.killed, "removed": done.removed,
                  "tmp": sorted(p.name for p in tmp.iterdir())}))
before.kill()
"""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def test_a_daemon_and_tmp_files_an_action_left_are_removed_and_the_environment_is_kept(tmp_path: Path) -> None:
    # GIVEN a warm environment (a process and a /tmp file of its own) and an action that left a setsid'd
    # daemon and a directory in /tmp WHEN the runner scrubs after the invocation
    done = subprocess.run([sys.executable, "-c", SCENARIO, str(tmp_path)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    try:
        # THEN the daemon is dead (it had escaped its session, not the subreaper), the left files are gone
        assert not _alive(seen["daemon"]), seen
        assert seen["killed"] >= 1 and seen["removed"] >= 2, seen
        # AND what the environment held before any action ran is untouched
        assert seen["tmp"] == ["runtime-file"], seen
    finally:
        for pid in (seen["daemon"],):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_nothing_is_scrubbed_outside_lambda(monkeypatch) -> None:
    # GIVEN no AWS_LAMBDA_FUNCTION_NAME (a developer's machine, the test suite) THEN the runner does not scrub
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    assert not leftovers.in_lambda()
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "attune-ActionRunnerFunction")
    assert leftovers.in_lambda()


def test_a_process_started_before_the_baseline_is_not_a_stranger(tmp_path: Path) -> None:
    # GIVEN this process's own child started before the snapshot WHEN scrubbed THEN it survives
    child = subprocess.Popen(["sleep", "30"])
    try:
        time.sleep(0.05)
        baseline = leftovers.Baseline(frozenset(leftovers._descendants()), frozenset(), tmp_path)
        assert leftovers.scrub(baseline).killed == 0
        assert child.poll() is None
    finally:
        child.kill()
        child.wait()
