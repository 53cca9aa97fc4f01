#!/bin/bash
# What the Zabbix template's import test needs: PHP 8.2 (CLI with the
# extensions Zabbix's frontend uses) installed, and Debian's Zabbix 6.0
# frontend (zabbix-frontend-php) and server schema (zabbix-server-pgsql)
# unpacked into the state directory, not installed: installing the server
# package would start a zabbix_server. Each test creates its own database in
# env-postgres's cluster, loads the schema, and serves the frontend's API
# with `php -S` on loopback (the frontend reads its database settings from
# the environment: see zabbix.conf.php below).
. "$(dirname "$0")/lib.sh"
D=$STATE/zabbix; mkdir -p "$D"
VERSION=2   # bump when the layout below changes
start=$(date +%s)
ensure_pkgs php8.2-cli php8.2-pgsql php8.2-bcmath php8.2-gd php8.2-mbstring php8.2-xml
if [ -f "$D/frontend/api_jsonrpc.php" ] && [ -f "$D/schema/schema.sql.gz" ] && [ "$(cat "$D/version" 2>/dev/null)" = "$VERSION" ]; then
  say "zabbix frontend and schema already in $D"
else
  [ -f "$STATE/.apt-updated" ] || { apt-get -o DPkg::Lock::Timeout=900 update -q >"$STATE/apt-update.log" 2>&1; touch "$STATE/.apt-updated"; }
  W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
  (cd "$W" && apt-get download zabbix-frontend-php zabbix-server-pgsql >/dev/null 2>&1) || die "apt-get download zabbix-frontend-php zabbix-server-pgsql failed"
  dpkg-deb -x "$W"/zabbix-frontend-php_*.deb "$W/fe"
  dpkg-deb -x "$W"/zabbix-server-pgsql_*.deb "$W/srv"
  rm -rf "$D/frontend" "$D/schema"
  cp -a "$W/fe/usr/share/zabbix" "$D/frontend"
  mkdir -p "$D/schema"
  cp "$W/srv/usr/share/zabbix-server-pgsql/"{schema,images,data}.sql.gz "$D/schema/" || die "no schema in zabbix-server-pgsql"
  # Debian's frontend reads /etc/zabbix/zabbix.conf.php; this copy reads its
  # own, which takes each test's database from the environment.
  sed -i "s|const CONFIG_FILE_PATH = '/etc/zabbix/zabbix.conf.php';|const CONFIG_FILE_PATH = '$D/frontend/conf/zabbix.conf.php';|" \
    "$D/frontend/include/classes/core/CConfigFile.php"
  grep -q "$D/frontend/conf/zabbix.conf.php" "$D/frontend/include/classes/core/CConfigFile.php" || die "could not point the frontend at its config"
  rm -f "$D/frontend/conf/zabbix.conf.php"
  cat >"$D/frontend/conf/zabbix.conf.php" <<'PHP'
<?php
// Written by hack/env/zabbix.sh: each test's own database, from its environment.
$DB['TYPE']     = 'POSTGRESQL';
$DB['SERVER']   = getenv('VPT_ZBX_DB_HOST');
$DB['PORT']     = getenv('VPT_ZBX_DB_PORT');
$DB['DATABASE'] = getenv('VPT_ZBX_DB_NAME');
$DB['USER']     = getenv('VPT_ZBX_DB_USER');
$DB['PASSWORD'] = getenv('VPT_ZBX_DB_PASSWORD');
$DB['SCHEMA']   = '';
$DB['ENCRYPTION'] = false;
$DB['KEY_FILE'] = '';
$DB['CERT_FILE'] = '';
$DB['CA_FILE'] = '';
$DB['VERIFY_HOST'] = false;
$DB['CIPHER_LIST'] = '';
$DB['VAULT_URL'] = '';
$DB['VAULT_DB_PATH'] = '';
$DB['VAULT_TOKEN'] = '';
$DB['DOUBLE_IEEE754'] = true;
$ZBX_SERVER      = '127.0.0.1';
$ZBX_SERVER_PORT = '1';
$ZBX_SERVER_NAME = 'virtplane-test';
$IMAGE_FORMAT_DEFAULT = IMAGE_FORMAT_PNG;
PHP
  echo "$VERSION" >"$D/version"
  say "unpacked zabbix $(dpkg-deb -f "$W"/zabbix-frontend-php_*.deb Version) frontend and schema into $D"
fi
say "zabbix setup took $(( $(date +%s) - start ))s"
write_env zabbix "PHP=$(command -v php8.2 || command -v php)" "FRONTEND=$D/frontend" "SCHEMA=$D/schema"
