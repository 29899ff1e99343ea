#!/usr/bin/env bash
# Exits 0 once the URL in the variable named $1 answers PATH ($2) with HTTP 2xx-4xx.
set -euo pipefail
url=${!1:?"$1 is not set: did the deploy command publish it?"}
exec node -e '
fetch(process.argv[1]).then(r => process.exit(r.status < 500 ? 0 : 1), () => process.exit(1))
' "$url$2"
