#!/usr/bin/env bash
# Installs what dit-webgpu needs on a fresh machine: npm packages, a WebGPU adapter (Mesa lavapipe when no GPU
# adapter is found, on Debian/Ubuntu as root), Chromium for the browser tests (optional) and Debian's Fashion-MNIST
# (the real dataset of `--data fashion-mnist`; optional).
# Usage: bash scripts/setup.sh [--no-browser] [--no-fashion-mnist]
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
want_browser=1 want_fashion=1
for a in "$@"; do
  case "$a" in
    --no-browser) want_browser=0 ;;
    --no-fashion-mnist) want_fashion=0 ;;
    *) echo "setup.sh: unknown option $a (usage: bash scripts/setup.sh [--no-browser] [--no-fashion-mnist])" >&2; exit 2 ;;
  esac
done

say() { printf '[setup] %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund
fi

has_adapter() { node scripts/probe-adapter.mjs >/dev/null 2>&1; }

apt_install_lavapipe() {
  . /etc/os-release
  local suite_args=()
  if [ "${ID:-}" = debian ] && [ "${VERSION_CODENAME:-}" = bookworm ]; then
    # bookworm's Mesa 22 is too old for Dawn; backports carries Mesa 25.
    local uri
    uri=$(sed -n 's/^URIs: //p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
    [ -n "$uri" ] || uri=http://deb.debian.org/debian
    if [ ! -f /etc/apt/sources.list.d/backports.sources ]; then
      printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: %s\n' \
        "$uri" /usr/share/keyrings/debian-archive-keyring.gpg | as_root tee /etc/apt/sources.list.d/backports.sources >/dev/null
    fi
    suite_args=(-t bookworm-backports)
  fi
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${suite_args[@]}" mesa-vulkan-drivers libvulkan1
}

if has_adapter; then
  say "WebGPU adapter found"
else
  . /etc/os-release 2>/dev/null || true
  if { [ "${ID:-}" = debian ] || [ "${ID:-}" = ubuntu ] || [[ "${ID_LIKE:-}" == *debian* ]]; } && as_root true 2>/dev/null; then
    say "no WebGPU adapter: installing Mesa lavapipe (software Vulkan)"
    apt_install_lavapipe
  fi
  if ! has_adapter; then
    say "still no WebGPU adapter. Install a Vulkan driver: on Debian bookworm,"
    say "  apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1   (Mesa >= 24 for lavapipe)"
    say "on Ubuntu/newer Debian: apt-get install mesa-vulkan-drivers libvulkan1; or your GPU vendor's Vulkan driver."
    node scripts/probe-adapter.mjs || true
    exit 1
  fi
fi

if [ "$want_browser" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  if as_root true 2>/dev/null && command -v apt-get >/dev/null; then
    say "installing Debian's chromium (browser tests, SwiftShader adapter)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium || say "chromium not installed: browser tests will be skipped"
  else
    say "no chromium and no root: browser tests will be skipped"
  fi
fi
fashion_dir=/usr/share/datasets/fashion-mnist
if [ "$want_fashion" = 1 ] && [ ! -d "$fashion_dir" ]; then
  # A machine that already had an adapter ran no `apt-get update` above: its package lists may be empty.
  known() { apt-cache show dataset-fashion-mnist >/dev/null 2>&1; }
  if as_root true 2>/dev/null && command -v apt-get >/dev/null && { known || { as_root apt-get update -qq && known; }; }; then
    say "installing Debian's dataset-fashion-mnist (--data fashion-mnist; --no-fashion-mnist skips it)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist || say "dataset-fashion-mnist not installed: --data fashion-mnist needs its IDX files (fashion-mnist:DIR)"
  else
    say "Fashion-MNIST not installed (no root, apt or package): --data fashion-mnist:DIR takes the four IDX files"
  fi
fi
node scripts/probe-adapter.mjs
