#!/usr/bin/env bash
# Ready when the rollout is complete (PIT retries this until the check's timeout).
set -euo pipefail
"${PIT_KUBECTL:-kubectl}" rollout status --namespace "$PIT_NAMESPACE" "$1" --timeout 3s
