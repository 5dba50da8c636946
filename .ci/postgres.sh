#!/usr/bin/env bash
# Install (Debian package) and start a throw-away PostgreSQL on loopback for the test suite.
#   .ci/postgres.sh start   → prints the SQLAlchemy URL on stdout
#   .ci/postgres.sh stop
# The cluster lives under /tmp and runs as the `postgres` user when we are root (PostgreSQL
# refuses to run as root).
set -euo pipefail

PORT="${THRIFTY_PG_PORT:-55432}"
DATA="/tmp/thrifty-pg-$PORT"
URL="postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres"

pg_bin() {
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
    [[ -n "$dir" && -x "$dir/initdb" ]] && echo "$dir"
}

as_pg() {
    if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install() {
    if [[ -z "$(pg_bin)" ]]; then
        echo "installing PostgreSQL (Debian package)…" >&2
        local sudo=""
        [[ "$(id -u)" == 0 ]] || sudo="sudo"
        $sudo apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >&2
    fi
}

start() {
    install
    local bin
    bin="$(pg_bin)"
    if [[ ! -f "$DATA/PG_VERSION" ]]; then
        rm -rf "$DATA"
        mkdir -p "$DATA"
        [[ "$(id -u)" == 0 ]] && chown postgres: "$DATA"
        as_pg "$bin/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 >/dev/null
    fi
    if ! as_pg "$bin/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
        as_pg "$bin/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $PORT -k /tmp -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
            start >/dev/null
    fi
    echo "$URL"
}

stop() {
    local bin
    bin="$(pg_bin)" || exit 0
    [[ -f "$DATA/PG_VERSION" ]] && as_pg "$bin/pg_ctl" -D "$DATA" -m fast stop >/dev/null 2>&1 || true
}

"${1:-start}"
