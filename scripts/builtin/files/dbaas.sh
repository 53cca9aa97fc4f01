#!/bin/bash
# Database as a service: installs PostgreSQL or MariaDB on a Debian VM or
# container, creates a database and its owner, and opens it to the network.
# virtplane mails the connection details (the notice) to the user.
# Values arrive as environment variables set by virtplane's preamble:
#   ENGINE       postgresql or mariadb
#   DB_NAME      database name ([a-z_][a-z0-9_]*)
#   DB_USER      owner's login ([a-z_][a-z0-9_]*)
#   DB_PASSWORD  owner's password (hidden; generated when not given)
#   LISTEN       address the server listens on (default '*')
set -euo pipefail
# Runners start scripts with umask 077 (their own files are private); what
# the database server reads as its own user must be readable by it.
umask 022
cd /

fail() { echo "dbaas: $*" >&2; exit 2; }
ident='^[a-z_][a-z0-9_]{0,62}$'
[[ "$DB_NAME" =~ $ident ]] || fail "DB_NAME must match $ident"
[[ "$DB_USER" =~ $ident ]] || fail "DB_USER must match $ident"
[ -n "$DB_PASSWORD" ] || fail "DB_PASSWORD is empty"
LISTEN="${LISTEN:-*}"
[[ "$LISTEN" =~ ^[0-9a-fA-F.:*]+$ ]] || fail "LISTEN must be an address or *"
export DEBIAN_FRONTEND=noninteractive

case "$ENGINE" in
postgresql)
  apt-get update -q
  apt-get install -y -q postgresql
  service postgresql start
  # The password travels as a psql variable and is quoted by psql (:'pw'),
  # never pasted into the SQL text.
  su postgres -c "psql -v ON_ERROR_STOP=1 -v pw=\"\$DB_PASSWORD\" -v usr=\"\$DB_USER\" -v db=\"\$DB_NAME\"" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'usr', :'pw') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'usr') \gexec
SQL
  conf_dir="$(ls -d /etc/postgresql/*/main | head -n1)"
  printf "listen_addresses = '%s'\n" "$LISTEN" >"$conf_dir/conf.d/virtplane-dbaas.conf"
  printf 'host %s %s all scram-sha-256\n' "$DB_NAME" "$DB_USER" >>"$conf_dir/pg_hba.conf"
  service postgresql restart
  echo "postgresql ready: database $DB_NAME, user $DB_USER, port 5432"
  ;;
mariadb)
  apt-get update -q
  apt-get install -y -q mariadb-server
  service mariadb start
  # SQL string literal: backslashes and quotes escaped for MariaDB.
  pw_sql="$(printf '%s' "$DB_PASSWORD" | sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g")"
  mysql --protocol=socket -u root <<SQL
CREATE DATABASE IF NOT EXISTS \`$DB_NAME\`;
CREATE USER IF NOT EXISTS '$DB_USER'@'%' IDENTIFIED BY '$pw_sql';
GRANT ALL PRIVILEGES ON \`$DB_NAME\`.* TO '$DB_USER'@'%';
FLUSH PRIVILEGES;
SQL
  printf '[mysqld]\nbind-address = %s\n' "${LISTEN/\*/0.0.0.0}" >/etc/mysql/mariadb.conf.d/99-virtplane-dbaas.cnf
  service mariadb restart
  echo "mariadb ready: database $DB_NAME, user $DB_USER, port 3306"
  ;;
*)
  fail "ENGINE must be postgresql or mariadb"
  ;;
esac
