#!/usr/bin/env bash
# Runs in <workspace>/node-1/pit-test-app; node-1's URL comes from its deploy (NODE_1_URL).
set -euo pipefail
# Called as the existing deployer calls it (pit run --toolkit-args): namespace [suite id].
echo "deploy.sh of test app called with: $*"
TARGET_SERVICE_URL=${NODE_1_URL:?"node-1 did not publish NODE_1_URL"} \
  exec ../../start-node.sh PIT_TEST_APP_URL server.js
