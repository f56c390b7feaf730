# Source this file: starts a throwaway PostgreSQL 15 server (Debian's package) and exports
# IGPG_ZOO_TEST_POSTGRES_URL=postgresql+psycopg://... for the registry tests.
#   source .ci/postgres.sh      # start (does nothing when the variable is already set)
#   igpg_zoo_pg_stop            # stop the server and delete its folder (optional)
# As root the server runs as the 'postgres' OS user (initdb refuses root). Data lives in a temp
# folder, listens on 127.0.0.1 at a free port, fsync off: for tests only.

igpg_zoo_pg_stop() {
  if [ -n "${IGPG_ZOO_PG_DIR:-}" ] && [ -d "$IGPG_ZOO_PG_DIR" ]; then
    _igpg_zoo_pg_as "$IGPG_ZOO_PG_BIN/pg_ctl" -D "$IGPG_ZOO_PG_DIR/data" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$IGPG_ZOO_PG_DIR"
  fi
  unset IGPG_ZOO_TEST_POSTGRES_URL IGPG_ZOO_PG_DIR
}

_igpg_zoo_pg_as() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

_igpg_zoo_pg_start() {
  IGPG_ZOO_PG_BIN=${IGPG_ZOO_PG_BIN:-/usr/lib/postgresql/15/bin}
  if [ ! -x "$IGPG_ZOO_PG_BIN/initdb" ]; then
    echo "postgres.sh: no PostgreSQL at $IGPG_ZOO_PG_BIN (apt-get install postgresql); PostgreSQL tests will skip" >&2
    return 1
  fi
  local dir port py
  dir=$(mktemp -d "${TMPDIR:-/tmp}/igpg-zoo-pg.XXXXXX") || return 1
  chmod 755 "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  py=$(command -v python3 || command -v python)
  port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  if ! _igpg_zoo_pg_as "$IGPG_ZOO_PG_BIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1; then
    echo "postgres.sh: initdb failed, see $dir/initdb.log" >&2
    return 1
  fi
  if ! _igpg_zoo_pg_as "$IGPG_ZOO_PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200" \
      start >/dev/null; then
    echo "postgres.sh: the server did not start, see $dir/server.log" >&2
    return 1
  fi
  if ! _igpg_zoo_pg_as "$IGPG_ZOO_PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres igpg_zoo_test 2>"$dir/createdb.log"; then
    echo "postgres.sh: createdb failed, see $dir/createdb.log" >&2
    return 1
  fi
  export IGPG_ZOO_PG_BIN IGPG_ZOO_PG_DIR="$dir"
  export IGPG_ZOO_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:$port/igpg_zoo_test"
  echo "postgres.sh: PostgreSQL on 127.0.0.1:$port (data in $dir)"
}

if [ -z "${IGPG_ZOO_TEST_POSTGRES_URL:-}" ]; then
  _igpg_zoo_pg_start || true
fi
