# Shared by scripts/test and scripts/demo: install what tutti needs on Debian 12, reserve
# hugepages, and find cargo. Source it; it does not run anything by itself.

# Debian packages tutti builds and tests with.
TUTTI_APT_PACKAGES=(
  dpdk dpdk-dev libdpdk-dev libclang-dev pkg-config gcc
  iproute2 iputils-ping procps curl python3 prometheus espeak-ng ffmpeg hping3
  sip-tester baresip-core redis-server sox kamailio libssl-dev make
  libopus-dev libpocketsphinx-dev libsphinxbase-dev pocketsphinx-en-us
)

# Install the packages above that are missing (apt-get update only when something is).
tutti_install_packages() {
  local missing=()
  for p in "${TUTTI_APT_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "== apt packages: all present"
  fi
}

# schemathesis (PyPI), pinned, in a venv under ~/.cache/tutti (created once).
TUTTI_SCHEMATHESIS_VERSION=4.32.5
TUTTI_SCHEMATHESIS_VENV="$HOME/.cache/tutti/schemathesis-$TUTTI_SCHEMATHESIS_VERSION"

tutti_install_schemathesis() {
  if [ -x "$TUTTI_SCHEMATHESIS_VENV/bin/schemathesis" ]; then
    return
  fi
  echo "== installing schemathesis $TUTTI_SCHEMATHESIS_VERSION into $TUTTI_SCHEMATHESIS_VENV"
  tutti_install_packages python3-venv
  rm -rf "$TUTTI_SCHEMATHESIS_VENV"
  python3 -m venv "$TUTTI_SCHEMATHESIS_VENV"
  "$TUTTI_SCHEMATHESIS_VENV/bin/pip" install -q "schemathesis==$TUTTI_SCHEMATHESIS_VERSION"
}

# Make cargo reachable (rustup installs it under ~/.cargo/bin) or explain.
tutti_find_cargo() {
  export PATH="$HOME/.cargo/bin:$PATH"
  if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust 1.85 or newer with rustup (https://rustup.rs), then run this again" >&2
    exit 1
  fi
}

tutti_require_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "$0 must run as root (DPDK needs hugepages; the tests create network namespaces): sudo $0" >&2
    exit 1
  fi
}
