"""`python -m chalicelib.cli`: the same command as `attune` (the local cloud's harness starts `dev` so)."""

from __future__ import annotations

import sys

from chalicelib.cli import main

sys.exit(main())
