#!/usr/bin/env bash
set -euo pipefail
exec ../is-ready.sh NODE_1_URL /time
