"""Finding an action's processes from the host: actions run in a PID namespace, so tests tag them.

An action names its process after a tag the test gave it (`exec -a TAG ...`),
and the test looks for that tag in every host process's command line.
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
