#!/usr/bin/env bash
# Exits 0 once the component whose URL is in the variable named $1 answers /healthz.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/bin-dir.sh"
url=${!1:?"$1 is not set: did the deploy command publish it?"}
exec "$bin_dir/node-1" check "$url"
