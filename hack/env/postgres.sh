#!/bin/bash
# A private PostgreSQL 15 cluster on 127.0.0.1:55432 for store tests.
. "$(dirname "$0")/lib.sh"
D=$STATE/postgres; mkdir -p "$D"
PORT=${VIRTPLANE_PG_PORT:-55432}
ensure_pkgs postgresql
B=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
chown postgres:postgres "$D"
if runuser -u postgres -- "$B/pg_ctl" -D "$D/data" status >/dev/null 2>&1 && tcp_answers 127.0.0.1 "$PORT"; then
  say "postgres already runs on 127.0.0.1:$PORT"
else
  if [ ! -d "$D/data" ]; then
    runuser -u postgres -- "$B/initdb" -D "$D/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
    NEW=1
  fi
  runuser -u postgres -- "$B/pg_ctl" -D "$D/data" -l "$D/pg.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $D -c max_connections=300 -c fsync=off" start >/dev/null
  if [ -n "${NEW:-}" ]; then
    psql -q -h "$D" -p "$PORT" -U postgres \
      -c "ALTER ROLE postgres PASSWORD 'virtplane'" \
      -c "CREATE ROLE virtplane LOGIN PASSWORD 'virtplane' CREATEDB" \
      -c "CREATE DATABASE virtplane OWNER virtplane" >/dev/null
  fi
  say "started postgres on 127.0.0.1:$PORT (data $D/data)"
fi
write_env postgres "ADDR=127.0.0.1:$PORT" \
  "DSN=postgres://virtplane:virtplane@127.0.0.1:$PORT/virtplane?sslmode=disable" \
  "ADMIN_DSN=postgres://postgres:virtplane@127.0.0.1:$PORT/postgres?sslmode=disable"
