#!/usr/bin/env bash
# Starts one process of the example in the background and publishes its URL.
#   deploy.sh OUTPUT_KEY PROGRAM [ARGS...]
# PROGRAM is taken from the example's build directory (bin-dir.sh) when it is there, else from
# PATH (so that `python3 testapp.py` works too).
# The program listens on a free loopback port and writes its URL to the file given with
# --url-file; this script waits for that (through a FIFO: no polling) and writes
# OUTPUT_KEY=<url> to $PIT_OUTPUTS, which PIT passes to the components that depend on this one.
set -euo pipefail
key=$1
program=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/bin-dir.sh"
fifo="$PIT_WORKSPACE/$PIT_COMPONENT_ID.url"
rm -f "$fifo"
mkfifo "$fifo"
# setsid: the process outlives this script and PIT's process group for the deploy command.
if [ -x "$bin_dir/$program" ]; then
  exe=$bin_dir/$program
else
  exe=$(command -v "$program") || { echo "$program is neither in $bin_dir nor on PATH" >&2; exit 1; }
fi
setsid "$exe" "$@" --url-file "$fifo" >>"$PIT_WORKSPACE/$PIT_COMPONENT_ID.out" 2>&1 </dev/null &
echo $! >"$PIT_WORKSPACE/$PIT_COMPONENT_ID.pid"
if ! read -r -t 20 url <"$fifo"; then
  echo "$program did not report its URL within 20s; its output:" >&2
  cat "$PIT_WORKSPACE/$PIT_COMPONENT_ID.out" >&2 || true
  exit 1
fi
echo "$key=$url" >>"$PIT_OUTPUTS"
echo "started $program as pid $(cat "$PIT_WORKSPACE/$PIT_COMPONENT_ID.pid") at $url"
