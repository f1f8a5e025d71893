"""Pack bodies the e2e tests register."""

from __future__ import annotations

from typing import Any

ECHO_PY = """\
import json, sys

def run(**params):
    return {"echo": params.get("message")}
"""

ECHO_YAML = """\
name: hello
description: Echo the message back
runner_type: python3
entry_point: hello.py
parameters:
  message:
    type: string
    required: true
"""


def echo_pack(ref: str, version: str = "1.0.0") -> dict[str, Any]:
    """A user pack with one python3 action `<ref>.hello`."""
    return {
        "ref": ref,
        "version": version,
        "label": f"{ref} pack",
        "files": {"actions/hello.yaml": ECHO_YAML, "actions/hello.py": ECHO_PY},
    }
