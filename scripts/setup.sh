#!/usr/bin/env bash
# Turn a fresh Debian machine into one that builds, tests and runs multitenant.
# Idempotent: every step checks first. Run as root (or with sudo available).
set -euo pipefail

PG_MAJOR="${PG_MAJOR:-15}"
PGRX_VERSION="0.18.1"
PG_CONFIG="/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config"

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# 1. Debian packages
packages=(postgresql-"${PG_MAJOR}" postgresql-server-dev-"${PG_MAJOR}" postgresql-contrib
          libclang-dev clang pkg-config sudo build-essential libssl-dev ca-certificates)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    log "Debian packages present"
fi
# the Debian package starts a cluster on 5432 we do not use; leave it alone

# 2. Rust toolchain must be there already (the machine's rustup); cargo-pgrx at the pinned version
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }
if ! cargo pgrx --version 2>/dev/null | grep -q " ${PGRX_VERSION}\$"; then
    log "installing cargo-pgrx ${PGRX_VERSION} (takes ~8 minutes on 2 cores)"
    cargo install --locked cargo-pgrx --version "${PGRX_VERSION}"
else
    log "cargo-pgrx ${PGRX_VERSION} present"
fi

# 3. Register the Debian PostgreSQL with pgrx
PGRX_HOME="${PGRX_HOME:-$HOME/.pgrx}"
if ! grep -qs "^pg${PG_MAJOR} = \"${PG_CONFIG}\"" "${PGRX_HOME}/config.toml"; then
    log "cargo pgrx init --pg${PG_MAJOR} ${PG_CONFIG}"
    cargo pgrx init "--pg${PG_MAJOR}" "${PG_CONFIG}"
else
    log "pgrx knows pg${PG_MAJOR}"
fi

# 4. PostgreSQL refuses to run as root: the clusters run as the 'postgres' OS user,
#    which needs to read the build tree (cargo pgrx test --runas postgres).
id postgres >/dev/null 2>&1 || { echo "OS user postgres missing (postgresql-${PG_MAJOR} creates it)" >&2; exit 1; }
log "ready"
