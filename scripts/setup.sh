#!/usr/bin/env bash
# Installs everything Burrow's demo, tests and benchmarks need, and builds it.
# Idempotent: on a machine where all is present it only checks, in about a second.
#   - Debian packages (as root): iproute2, nftables, wireguard-go, wireguard-tools,
#     iperf3, iputils-ping, tcpdump, python3 (a UDP_SEGMENT sender in the TUN tests),
#     zbar-tools (zbarimg: the server's QR codes in tests),
#     chromium (headless, driven by playwright-core: the admin page's browser tests),
#     JavaScriptCore (`jsc`, and the C API with OpenSSL and a C compiler for
#     native/jsc-host), postgresql (the shared registry of several gateways; the tests
#     start their own throwaway server with its initdb and pg_ctl, never the package's
#     cluster). `apt-get update` runs once, only if one is missing.
#   - npm packages from the committed lockfile (`npm ci`), when node_modules is stale.
#   - the TypeScript build into dist/, when a source is newer than the last build.
#   - reference peers for the interop matrix: the latest wireguard-go from its Go module
#     and boringtun from its crate, each built once per pinned version into a cache
#     outside the repository (/var/cache/burrow/peers, or $BURROW_PEERS_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------------
# command -> package that provides it
declare -A need=(
  [ip]=iproute2 [nft]=nftables [wireguard-go]=wireguard-go [wg]=wireguard-tools
  [iperf3]=iperf3 [ping]=iputils-ping [tcpdump]=tcpdump [sha256sum]=coreutils
  [jsc]=libjavascriptcoregtk-4.0-bin [cc]=gcc [pkg-config]=pkg-config [zbarimg]=zbar-tools
  [chromium]=chromium [python3]=python3
)
# pkg-config module -> package that provides it (the C host's headers)
declare -A need_lib=([javascriptcoregtk-4.1]=libjavascriptcoregtk-4.1-dev [openssl]=libssl-dev)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
# PostgreSQL's server programs are outside PATH (/usr/lib/postgresql/VERSION/bin).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
for lib in "${!need_lib[@]}"; do
  pkg-config --exists "$lib" 2>/dev/null || missing+=("${need_lib[$lib]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    say "not root: cannot install ${missing[*]}; tests that need them will skip and say why"
  else
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if [[ " ${missing[*]} " == *" postgresql "* ]]; then
      # No "main" cluster on port 5432: the tests run their own servers on sockets.
      mkdir -p /etc/postgresql-common/createcluster.d
      echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/burrow.conf
    fi
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# --- reference peers ---------------------------------------------------------------
# Burrow is proven against three implementations: Debian's wireguard-go (above), the
# latest wireguard-go and boringtun. The last two are built from their registries, one
# directory per pinned version, renamed into place only when complete; bin/ links to the
# pinned builds and is where the tests look (test/support/wireguard-go.ts).
WIREGUARD_GO_MODULE=golang.zx2c4.com/wireguard
# The module proxy serves this commit of 2026-05-22; it reports itself as v0.0.20250522.
WIREGUARD_GO_VERSION=v0.0.0-20260522210424-ecfc5a8d5446
BORINGTUN_VERSION=0.7.1
peers=${BURROW_PEERS_DIR:-/var/cache/burrow/peers}

# A toolchain command, also when PATH lacks it (Go and Rust live outside the usual PATH).
tool() {
  local cmd=$1 dir
  shift
  command -v "$cmd" >/dev/null 2>&1 && { command -v "$cmd"; return; }
  for dir in "$@"; do [ -x "$dir/$cmd" ] && { echo "$dir/$cmd"; return; }; done
  return 1
}

build_wireguard_go() {
  local dir=$peers/wireguard-go-$WIREGUARD_GO_VERSION go
  [ -x "$dir/wireguard-go" ] && return 0
  go=$(tool go /usr/local/go/bin "$HOME/go/bin") || { say "no Go toolchain: the latest wireguard-go is not built; its interop tests will say so"; return 0; }
  say "building wireguard-go $WIREGUARD_GO_VERSION (about 2 minutes)"
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  # Two cores: at most two compile jobs. Outside the repository, so no go.mod is in the way.
  if (cd / && GOBIN="$dir.tmp" GOMAXPROCS=2 GOFLAGS="-buildvcs=false -p=2" "$go" install "$WIREGUARD_GO_MODULE@$WIREGUARD_GO_VERSION") >&2; then
    mv "$dir.tmp/wireguard" "$dir.tmp/wireguard-go" && rm -rf "$dir" && mv "$dir.tmp" "$dir"
  else
    rm -rf "$dir.tmp"
    say "building wireguard-go failed; its interop tests will say so"
  fi
}

build_boringtun() {
  local dir=$peers/boringtun-cli-$BORINGTUN_VERSION cargo
  [ -x "$dir/bin/boringtun-cli" ] && return 0
  cargo=$(tool cargo "$HOME/.cargo/bin" /root/.cargo/bin) || { say "no Rust toolchain: boringtun is not built; its interop tests will say so"; return 0; }
  say "building boringtun-cli $BORINGTUN_VERSION (several minutes)"
  rm -rf "$dir.tmp"
  # The crate's own lock file, two jobs; cargo finds rustc beside itself.
  if PATH="$(dirname "$cargo"):$PATH" "$cargo" install boringtun-cli --version "=$BORINGTUN_VERSION" --locked --jobs 2 --root "$dir.tmp" --quiet >&2; then
    rm -f "$dir.tmp/.crates.toml" "$dir.tmp/.crates2.json"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  else
    rm -rf "$dir.tmp"
    say "building boringtun-cli failed; its interop tests will say so"
  fi
}

if [ "$(id -u)" -ne 0 ] && [ ! -w "$(dirname "$peers")" ] && [ ! -w "$peers" ]; then
  say "cannot write $peers: reference peers not built; set BURROW_PEERS_DIR to a writable directory"
else
  mkdir -p "$peers/bin"
  build_wireguard_go
  build_boringtun
  for link in "wireguard-go-$WIREGUARD_GO_VERSION/wireguard-go" "boringtun-cli-$BORINGTUN_VERSION/bin/boringtun-cli"; do
    if [ -x "$peers/$link" ]; then ln -sfn "../$link" "$peers/bin/$(basename "$link")"; fi
  done
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

# --- the JavaScriptCore bundle -----------------------------------------------------
# dist/jsc/burrow.js: engine + policy + src/apple driver in one script (esbuild).
jsc_bundle=dist/jsc/burrow.js
if [ ! -f "$jsc_bundle" ] || [ -n "$(find src crypto tunnel package.json -newer "$jsc_bundle" -name '*.ts' -o -newer "$jsc_bundle" -name '*.json' 2>/dev/null | head -1)" ]; then
  say "bundling the core for JavaScriptCore"
  npm run --silent build:jsc -- --log-level=warning
fi

# --- the C host on JavaScriptCore (native/jsc-host) ----------------------------------
if pkg-config --exists javascriptcoregtk-4.1 libcrypto 2>/dev/null; then
  if [ ! -x native/jsc-host/build/burrow-jsc-host ] || [ native/jsc-host/host.c -nt native/jsc-host/build/burrow-jsc-host ] || [ native/jsc-host/Makefile -nt native/jsc-host/build/burrow-jsc-host ]; then
    say "building the JavaScriptCore host"
    make -s -C native/jsc-host
  fi
else
  say "no JavaScriptCore or OpenSSL headers: the C host is not built; its tests will say so"
fi
