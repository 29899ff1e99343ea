#!/usr/bin/env bash
# Starts the test app and registers it in the suite's namespace as the existing toolkit's
# helm chart does (a pod, a Service named after the test app, an Ingress at
# /<namespace>.<suite id>), publishing no URL: PIT derives it.
set -euo pipefail
kubectl=${PIT_KUBECTL:-kubectl}
TARGET_SERVICE_URL=${NODE_1_URL:?"node-1 did not publish NODE_1_URL"} \
  ../../start-node.sh TEST_APP_PROCESS_URL server.js
url=$(sed -n 's/^TEST_APP_PROCESS_URL=//p' "$PIT_OUTPUTS" | tail -n 1)
port=${url##*:}
"$kubectl" apply --namespace "$PIT_NAMESPACE" -f - <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: $PIT_COMPONENT_ID
  labels: { app: $PIT_COMPONENT_ID }
spec:
  containers:
    - name: app
      image: pit-examples/node-1-test-app
      ports: [{ containerPort: $port }]
---
apiVersion: v1
kind: Service
metadata:
  name: $PIT_COMPONENT_ID
spec:
  selector: { app: $PIT_COMPONENT_ID }
  ports: [{ name: http, port: 80, targetPort: $port }]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: $PIT_COMPONENT_ID
spec:
  rules:
    - http:
        paths:
          - path: /$PIT_NAMESPACE.$PIT_SUITE_ID
            pathType: Prefix
            backend: { service: { name: $PIT_COMPONENT_ID, port: { number: 80 } } }
YAML
