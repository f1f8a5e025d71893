#!/bin/sh
# core.sleep: read {"seconds": N} from stdin and sleep; exec so that a
# cancel's SIGTERM reaches sleep itself.
seconds="$(python3 -c 'import json, sys; raw = sys.stdin.read(); print(json.loads(raw or "{}").get("seconds", 1))')"
exec sleep "$seconds"
