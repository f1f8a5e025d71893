"""The README's shell blocks as the tests that run them need them.

Why: the README's walkthroughs are run as written (a new user's first
minutes are those blocks pasted into a shell), so the docs and the tests
cannot drift. Each test substitutes only the address and the username; this
module finds a block and makes bash stop at the first failing command or
4xx/5xx answer, which `curl -s` alone would print and carry on past.
"""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
# --fail-with-body: a 4xx/5xx answer makes curl exit 22 (and still shows the error body).
STRICT_PRELUDE = 'set -euo pipefail\ncurl() { command curl --fail-with-body --show-error --max-time 30 "$@"; }\n'


def sh_block(section: str) -> str:
    """The first ```sh block after the heading `section`."""
    text = README.read_text()
    assert section in text, f"README.md lost its {section!r} section"
    found = re.search(r"```sh\n(.*?)```", text[text.index(section):], re.DOTALL)
    assert found is not None, f"no ```sh block under {section!r}"
    return found.group(1)


def with_line(block: str, prefix: str, replacement: str) -> str:
    """`block` with its one line starting with `prefix` replaced by `replacement`."""
    lines = block.splitlines()
    at = [i for i, line in enumerate(lines) if line.startswith(prefix)]
    assert len(at) == 1, f"expected one `{prefix}...` line in the README block, got {at}"
    lines[at[0]] = replacement
    return "\n".join(lines)


def strict(script: str) -> str:
    """`script` for `bash -c`, stopping at the first failing command or 4xx/5xx answer."""
    return STRICT_PRELUDE + script + "\n"
