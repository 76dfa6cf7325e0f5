# Shared helpers for Tessera's scripts. Source it; do not run it.
# shellcheck shell=bash

TESSERA_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Slow installs (the tansu broker build, the secantusdb virtualenv) are kept
# here between runs; delete the folder to start over.
TESSERA_CACHE_DIR=${TESSERA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tessera}
# Versions the scripts install (pinned: a new release is a deliberate change).
TANSU_VERSION=${TANSU_VERSION:-0.6.0}
SECANTUS_VERSION=${SECANTUS_VERSION:-0.7.0b3}
K6_VERSION=${K6_VERSION:-}

log() { printf '\033[1m[tessera]\033[0m %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root for: $*"; fi
}

# Installs Debian packages that are missing.
apt_install() {
    local missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; then
        as_root apt-get update -q >/dev/null
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
    fi
}

# What the build needs: rdkafka bundles librdkafka and builds it with cmake;
# its rdkafka_conf.c includes curl/curl.h even with curl switched off.
install_build_deps() {
    apt_install build-essential cmake zlib1g-dev libcurl4-openssl-dev pkg-config
}

# use_build_cache: builds into a target folder kept in the cache and shared
# by every clone (for CI, which starts from a clean clone each time), unless
# CARGO_TARGET_DIR is set already. The workspace's own crates are cleaned
# out first, so a clone's crates are compiled from its own sources whatever
# the files' times say (`cargo clean --workspace`: cargo 1.94 or newer).
# Past TESSERA_BUILD_CACHE_GB (default 30) the folder starts over.
use_build_cache() {
    [ -n "${CARGO_TARGET_DIR:-}" ] && return 0
    export CARGO_TARGET_DIR="$TESSERA_CACHE_DIR/target"
    local bound=${TESSERA_BUILD_CACHE_GB:-30} size_gb
    [[ $bound =~ ^[0-9]+$ ]] || die "TESSERA_BUILD_CACHE_GB is $bound, not a whole number of GB"
    [ -d "$CARGO_TARGET_DIR" ] || return 0
    size_gb=$(du -s --block-size=1G "$CARGO_TARGET_DIR" 2>/dev/null | cut -f1 || true)
    if [ "${size_gb:-0}" -gt "$bound" ]; then
        log "build cache is $size_gb GB, over $bound GB: starting it over"
        rm -rf "$CARGO_TARGET_DIR"
    else
        log "build cache: $CARGO_TARGET_DIR (${size_gb:-0} GB)"
        cargo clean --workspace --quiet
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for_port PORT SECONDS NAME
wait_for_port() {
    local port=$1 deadline=$((SECONDS + $2))
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        [ $SECONDS -ge $deadline ] && die "$3 did not listen on 127.0.0.1:$port within $2 s"
        sleep 0.2
    done
}

tansu_bin() { echo "$TESSERA_CACHE_DIR/tansu-$TANSU_VERSION/bin/tansu"; }

# The Kafka-compatible broker, built once into the cache (about 9 minutes
# on 2 cores; later runs reuse it).
install_tansu() {
    local bin; bin=$(tansu_bin)
    [ -x "$bin" ] && return 0
    install_build_deps
    log "building tansu $TANSU_VERSION into $TESSERA_CACHE_DIR (once; takes several minutes)"
    mkdir -p "$TESSERA_CACHE_DIR"
    CARGO_TARGET_DIR="$TESSERA_CACHE_DIR/tansu-build" \
        cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore \
        --root "$TESSERA_CACHE_DIR/tansu-$TANSU_VERSION" --quiet
    rm -rf "$TESSERA_CACHE_DIR/tansu-build"
}

secantus_python() { echo "$TESSERA_CACHE_DIR/secantus-$SECANTUS_VERSION/bin/python"; }

# venv_install DIR MODULES PACKAGE...: a virtualenv DIR in the cache with
# PACKAGEs from PyPI, made once; importing MODULES tells it is whole.
venv_install() {
    local dir=$TESSERA_CACHE_DIR/$1 modules=$2; shift 2
    [ -x "$dir/bin/python" ] && "$dir/bin/python" -c "import $modules" 2>/dev/null && return 0
    log "installing $* into $TESSERA_CACHE_DIR"
    python3 -m venv "$dir"
    "$dir/bin/python" -m pip install -q --disable-pip-version-check "$@"
}

# The MongoDB-compatible server, in its own virtualenv in the cache.
install_secantus() {
    venv_install "secantus-$SECANTUS_VERSION" secantus "secantusdb==$SECANTUS_VERSION"
}

SCHEMATHESIS_VERSION=4.32.5
schemathesis_bin() { echo "$TESSERA_CACHE_DIR/schemathesis-$SCHEMATHESIS_VERSION/bin/schemathesis"; }

# The OpenAPI fuzzer (PyPI), in its own virtualenv in the cache.
install_schemathesis() {
    venv_install "schemathesis-$SCHEMATHESIS_VERSION" schemathesis "schemathesis==$SCHEMATHESIS_VERSION"
}

# promtool (Debian's `prometheus` package): the suite checks the alert rules
# in compose/prometheus with it.
install_promtool() {
    apt_install prometheus
}

CONTRACT_PYTHON_DEPS="confluent-kafka==2.16.1 jsonschema==4.26.0"
contract_python() { echo "$TESSERA_CACHE_DIR/contract-venv/bin/python"; }

# An independent Kafka client and a JSON Schema validator (PyPI), in their
# own virtualenv in the cache: tests/contract consumes the topic with them.
install_contract_python() {
    # shellcheck disable=SC2086
    venv_install contract-venv "confluent_kafka, jsonschema" $CONTRACT_PYTHON_DEPS
}

# Debian's Chromium: the console's browser test drives it headless.
install_chromium() {
    apt_install chromium
}

PLAYWRIGHT_VERSION=1.64.1
playwright_dir() { echo "$TESSERA_CACHE_DIR/playwright-$PLAYWRIGHT_VERSION"; }

# playwright-core (npm, no browser download of its own: it drives Debian's
# Chromium) into the cache; tests/console/console.mjs imports it from there.
install_playwright() {
    local dir; dir=$(playwright_dir)
    [ -f "$dir/node_modules/playwright-core/package.json" ] && return 0
    command -v npm >/dev/null || apt_install nodejs npm
    log "installing playwright-core $PLAYWRIGHT_VERSION into $dir"
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-save --no-audit --no-fund --silent \
        "playwright-core@$PLAYWRIGHT_VERSION" >/dev/null
}
