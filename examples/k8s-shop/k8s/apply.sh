#!/usr/bin/env bash
# Applies a manifest into the suite's namespace, and shows the namespace PIT made.
set -euo pipefail
kubectl=${PIT_KUBECTL:-kubectl}
"$kubectl" get namespace "$PIT_NAMESPACE" --show-labels
"$kubectl" apply --namespace "$PIT_NAMESPACE" -f "$1"
