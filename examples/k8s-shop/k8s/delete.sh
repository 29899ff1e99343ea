#!/usr/bin/env bash
set -euo pipefail
"${PIT_KUBECTL:-kubectl}" delete --namespace "$PIT_NAMESPACE" --ignore-not-found --wait=false -f "$1"
