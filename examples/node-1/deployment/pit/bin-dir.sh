# Sourced by deploy.sh and status.sh: where the example's programs are. $PIT_EXAMPLE_BIN_DIR
# when set (scripts/example sets it), else the workspace's target/release, else target/quick
# (what scripts/example builds).
if [ -n "${PIT_EXAMPLE_BIN_DIR:-}" ]; then
  bin_dir=$PIT_EXAMPLE_BIN_DIR
else
  target=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../../.." && pwd)/target
  if [ -x "$target/release/node-1" ] || [ ! -x "$target/quick/node-1" ]; then
    bin_dir=$target/release
  else
    bin_dir=$target/quick
  fi
fi
