#!/usr/bin/env bash
# Installs everything Burrow's demo, tests and benchmarks need, and builds it.
# Idempotent: on a machine where all is present it only checks, in about a second.
#   - Debian packages (as root): iproute2, nftables, wireguard-go, wireguard-tools,
#     iperf3, iputils-ping, tcpdump, zbar-tools (zbarimg: the server's QR codes in tests).
#     `apt-get update` runs once, only if one is missing.
#   - npm packages from the committed lockfile (`npm ci`), when node_modules is stale.
#   - the TypeScript build into dist/, when a source is newer than the last build.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------------
# command -> package that provides it
declare -A need=(
  [ip]=iproute2 [nft]=nftables [wireguard-go]=wireguard-go [wg]=wireguard-tools
  [iperf3]=iperf3 [ping]=iputils-ping [tcpdump]=tcpdump [sha256sum]=coreutils
  [zbarimg]=zbar-tools
)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    say "not root: cannot install ${missing[*]}; tests that need them will skip and say why"
  else
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# --- npm packages ------------------------------------------------------------------
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi

# --- native addon ----------------------------------------------------------------
if [ -f native/binding.gyp ]; then
  addon=native/build/Release/burrow_native.node
  if [ ! -f "$addon" ] || [ -n "$(find native/src native/binding.gyp -newer "$addon" 2>/dev/null | head -1)" ]; then
    say "building the native addon"
    npm run --silent build:native
  fi
fi

# --- TypeScript build ------------------------------------------------------------
stamp=dist/.build-stamp
if [ ! -f "$stamp" ] || [ -n "$(find src crypto tunnel server tsconfig.json package.json -newer "$stamp" -name '*.ts' -o -newer "$stamp" -name '*.json' 2>/dev/null | head -1)" ]; then
  say "compiling TypeScript"
  npx tsc -p tsconfig.json
  touch "$stamp"
fi
