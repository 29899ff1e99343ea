#!/usr/bin/env bash
# Starts `node SCRIPT` in the background, waits for the URL it reports (through a FIFO: no
# polling) and publishes KEY=<url> to $PIT_OUTPUTS.
#   start-node.sh KEY SCRIPT
# The process inherits PIT_PROCESS_TAG, so PIT stops it when the environment ends: these
# components have no undeploy, as in the existing toolkit.
set -euo pipefail
key=$1
script=$2
fifo="$PIT_WORKSPACE/$PIT_COMPONENT_ID.url"
out="$PIT_WORKSPACE/$PIT_COMPONENT_ID.out"
rm -f "$fifo"
mkfifo "$fifo"
URL_FILE="$fifo" setsid node "$script" >>"$out" 2>&1 </dev/null &
# Tests read the pids from $PIDS_FILE to check that nothing outlives the run.
[ -z "${PIDS_FILE:-}" ] || echo $! >>"$PIDS_FILE"
if ! read -r -t 20 url <"$fifo"; then
  echo "node $script did not report its URL within 20s; its output:" >&2
  cat "$out" >&2 || true
  exit 1
fi
echo "$key=$url" >>"$PIT_OUTPUTS"
echo "started node $script at $url (target environment: ${PIT_TARGET_ENVIRONMENT:-none})"
