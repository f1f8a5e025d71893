#!/bin/bash
# core.local: run the "cmd" parameter with bash and let its exit code be ours.
# Parameters arrive on stdin as JSON and, one file each, in $ATTUNE_PARAMS
# (never argv or the environment); reading the file is a bash builtin, where
# decoding stdin would start an interpreter per run. The command runs in this
# bash (eval, $0 set to "bash" as `bash -c` would): a second bash per run
# would double the cost of the trivial command.
[ -f "$ATTUNE_PARAMS/cmd" ] || { echo "core.local: the cmd parameter is missing" >&2; exit 2; }
BASH_ARGV0=bash
eval "$(<"$ATTUNE_PARAMS/cmd")" </dev/null
