#!/bin/bash
# A private OpenLDAP slapd for the LDAP sign-in tests: ldap:// (StartTLS) on
# 127.0.0.1:10389 and ldaps:// on 127.0.0.1:10636, with a throw-away
# configuration, database and TLS certificate under $STATE/ldap. The Debian
# package is installed unconfigured: no system slapd is set up or started.
. "$(dirname "$0")/lib.sh"
D=$STATE/ldap; mkdir -p "$D"
PORT=${VIRTPLANE_LDAP_PORT:-10389}
TLSPORT=${VIRTPLANE_LDAPS_PORT:-10636}
BASE=dc=virtplane,dc=test
ADMIN=cn=admin,$BASE
PASS=virtplane-ldap
if ! dpkg-query -W -f='${Status}' slapd 2>/dev/null | grep -q 'install ok installed'; then
  echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
fi
ensure_pkgs slapd openssl
# The schema files are slapd's conffiles: on a machine where /etc/ldap was
# removed by hand, dpkg keeps them deleted; put them back.
if [ ! -f /etc/ldap/schema/core.schema ]; then
  apt-get -o DPkg::Lock::Timeout=900 install -y -q --reinstall -o Dpkg::Options::=--force-confmiss slapd >"$STATE/apt-install.log" 2>&1 \
    || { tail -30 "$STATE/apt-install.log" >&2; die "reinstalling slapd's schema files failed"; }
  say "slapd's schema files were missing: reinstalled them"
fi
if alive "$D/slapd.pid" && tcp_answers 127.0.0.1 "$PORT" && tcp_answers 127.0.0.1 "$TLSPORT"; then
  say "slapd already listens on 127.0.0.1:$PORT and :$TLSPORT"
else
  rm -rf "$D/db" "$D/slapd.pid"; mkdir -p "$D/db"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=127.0.0.1 \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -keyout "$D/key.pem" -out "$D/cert.pem" 2>/dev/null
  cat >"$D/slapd.conf" <<C
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $D/slapd.pid
argsfile $D/slapd.args
TLSCertificateFile $D/cert.pem
TLSCertificateKeyFile $D/key.pem
database mdb
maxsize 104857600
suffix "$BASE"
rootdn "$ADMIN"
rootpw $(slappasswd -s "$PASS")
directory $D/db
index objectClass eq
index uid,cn,member,memberUid eq
access to attrs=userPassword by self write by anonymous auth by * none
access to * by users read by * none
C
  cat >"$D/base.ldif" <<L
dn: $BASE
objectClass: dcObject
objectClass: organization
dc: virtplane
o: virtplane tests

dn: ou=people,$BASE
objectClass: organizationalUnit
ou: people

dn: ou=groups,$BASE
objectClass: organizationalUnit
ou: groups
L
  slapadd -q -f "$D/slapd.conf" -l "$D/base.ldif"
  /usr/sbin/slapd -f "$D/slapd.conf" -h "ldap://127.0.0.1:$PORT/ ldaps://127.0.0.1:$TLSPORT/"
  wait_for slapd 10 tcp_answers 127.0.0.1 "$TLSPORT"
  say "started slapd on 127.0.0.1:$PORT and :$TLSPORT (pid $(cat "$D/slapd.pid"))"
fi
write_env ldap "URL=ldap://127.0.0.1:$PORT" "LDAPS_URL=ldaps://127.0.0.1:$TLSPORT" "BASE=$BASE" \
  "ADMIN_DN=$ADMIN" "ADMIN_PASSWORD=$PASS" "CA=$D/cert.pem"
