#!/usr/bin/env bash
# core.local: parameters arrive as one JSON document on stdin (never argv or
# the environment); run its "cmd" with bash and let its exit code be ours.
set -euo pipefail
cmd="$(python3 -c 'import json, sys; print(json.load(sys.stdin)["cmd"])')"
exec bash -c "$cmd" </dev/null
