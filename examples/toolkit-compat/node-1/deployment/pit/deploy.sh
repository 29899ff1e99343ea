#!/usr/bin/env bash
# Runs in <workspace>/node-1 (the component has no location.path).
set -euo pipefail
exec ../start-node.sh NODE_1_URL server.js
