#!/usr/bin/env bash
# Ready when the test app's Service has an endpoint (its pod is Ready and listed).
set -euo pipefail
kubectl=${PIT_KUBECTL:-kubectl}
addresses=$("$kubectl" get endpointslices --namespace "$PIT_NAMESPACE" \
  -l "kubernetes.io/service-name=$PIT_COMPONENT_ID" -o 'jsonpath={.items[*].endpoints[*].addresses[0]}')
[ -n "$addresses" ] || { echo "no endpoint yet for service $PIT_COMPONENT_ID"; exit 1; }
echo "endpoints: $addresses"
