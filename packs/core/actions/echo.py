"""core.echo: return the message; run() for the python3 runner, stdin/stdout when run as a script."""

from __future__ import annotations

import json
import sys
from typing import Any


def run(message: str = "") -> dict[str, Any]:
    """The result the execution records as its output."""
    return {"message": message}


if __name__ == "__main__":
    raw = sys.stdin.read()
    params = json.loads(raw) if raw.strip() else {}
    print(json.dumps(run(**params)))
