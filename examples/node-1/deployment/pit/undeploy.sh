#!/usr/bin/env bash
# Stops the process deploy.sh started for this component (safe to run twice).
set -euo pipefail
pidfile="$PIT_WORKSPACE/$PIT_COMPONENT_ID.pid"
[ -f "$pidfile" ] || { echo "nothing to stop"; exit 0; }
pid=$(cat "$pidfile")
# Alive, and not a zombie waiting for its (adoptive) parent to reap it.
alive() { [ -r "/proc/$pid/stat" ] && [ "$(cut -d' ' -f3 <"/proc/$pid/stat" 2>/dev/null)" != Z ]; }
if alive; then
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do alive || break; sleep 0.05; done
  if alive; then kill -9 "$pid" 2>/dev/null || true; fi
fi
rm -f "$pidfile"
echo "stopped pid $pid"
