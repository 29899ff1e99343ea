#!/usr/bin/env bash
# Runs in <workspace>/node-1 (the component has no location.path).
set -euo pipefail
# Called as the existing deployer calls it (pit run --toolkit-args): namespace [suite id].
echo "deploy.sh of node-1 called with: $*"
exec ../start-node.sh NODE_1_URL server.js
