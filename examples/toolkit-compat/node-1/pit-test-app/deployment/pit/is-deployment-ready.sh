#!/usr/bin/env bash
# The existing test apps have no health endpoint: a 422 from /status (no session) means up.
set -euo pipefail
exec ../../is-ready.sh PIT_TEST_APP_URL /status
