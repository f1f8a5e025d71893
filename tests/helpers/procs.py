"""Finding an action's processes from the host: actions run in a PID namespace, so tests tag them.

An action names its process after a tag the test gave it (`exec -a TAG ...`),
and the test looks for that tag in every host process's command line. A
python3 action forked by a zygote has the zygote's command line, not its
entry point's: `execution_processes` finds it (and any action's processes)
by the execution id its environment carries.
"""

from __future__ import annotations

from pathlib import Path


def tagged_processes(tag: str) -> list[int]:
    """Host pids of live (not zombie) processes whose command line carries `tag`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if tag.encode() in (entry / "cmdline").read_bytes():
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state not in ("Z", "X"):
                    found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def execution_processes(execution_id: int) -> list[int]:
    """Host pids of live processes of execution `execution_id` (needs root to read other users' /proc).

    A cold start's environment names the execution (ATTUNE_EXECUTION_ID); a
    zygote-forked one's /proc environ is the zygote's (it was set after the
    fork), but its cwd is its own work subdir, `/attune/work/<id>-<random>`.
    """
    marker = f"ATTUNE_EXECUTION_ID={execution_id}".encode()
    subdir = f"/attune/work/{execution_id}-"
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit():
                continue
            ours = marker in (entry / "environ").read_bytes().split(b"\0")
            if not ours:
                try:
                    ours = str((entry / "cwd").readlink()).startswith(subdir)
                except OSError:
                    ours = False
            if ours:
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state not in ("Z", "X"):
                    found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return found
