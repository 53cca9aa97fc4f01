#!/bin/bash
# BIRD 2 iBGP route reflector for virtplane's IP fabric mode (Debian).
# Values arrive as environment variables set by virtplane's preamble:
#   ASN         autonomous system of the fabric (1..4294967295)
#   ROUTER_ID   router id of this reflector (IPv4 dotted quad)
#   CLUSTER_ID  route reflector cluster id (IPv4 dotted quad; default ROUTER_ID)
#   CLIENTS     route reflector clients: IPv4/IPv6 addresses, comma or space separated
#   BIRD_CONF   where to write the configuration (default /etc/bird/bird.conf)
#   INSTALL     "true" to apt-get install bird2, "false" to only write the configuration
set -euo pipefail

fail() { echo "bird-route-reflector: $*" >&2; exit 2; }

# Values are data; check them again here so the file written is always valid.
[[ "$ASN" =~ ^[0-9]{1,10}$ ]] && (( ASN >= 1 && ASN <= 4294967295 )) || fail "ASN must be 1..4294967295"
ipv4='^((25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])$'
[[ "$ROUTER_ID" =~ $ipv4 ]] || fail "ROUTER_ID must be an IPv4 address"
CLUSTER_ID="${CLUSTER_ID:-$ROUTER_ID}"
[[ "$CLUSTER_ID" =~ $ipv4 ]] || fail "CLUSTER_ID must be an IPv4 address"
BIRD_CONF="${BIRD_CONF:-/etc/bird/bird.conf}"

clients=()
for c in ${CLIENTS//,/ }; do
  [[ "$c" =~ ^[0-9a-fA-F.:]+$ ]] || fail "client $c is not an IP address"
  clients+=("$c")
done
(( ${#clients[@]} > 0 )) || fail "CLIENTS must list at least one neighbour"

if [ "${INSTALL:-true}" = true ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q bird2
fi

mkdir -p "$(dirname "$BIRD_CONF")"
tmp="$(mktemp "$BIRD_CONF.XXXXXX")"
{
  echo "# written by virtplane's bird-route-reflector script"
  echo "router id $ROUTER_ID;"
  echo "log syslog all;"
  echo
  echo "protocol device {}"
  echo
  echo "template bgp rr_client {"
  echo "  local as $ASN;"
  echo "  rr client;"
  echo "  rr cluster id $CLUSTER_ID;"
  echo "  direct;"
  echo "  ipv4 { import all; export all; };"
  echo "  ipv6 { import all; export all; };"
  echo "}"
  n=0
  for c in "${clients[@]}"; do
    n=$((n + 1))
    echo
    echo "protocol bgp client$n from rr_client {"
    echo "  neighbor $c as $ASN;"
    echo "}"
  done
} >"$tmp"
if command -v bird >/dev/null; then
  bird -p -c "$tmp" || { rm -f "$tmp"; fail "bird rejected the generated configuration"; }
fi
# mktemp made it private; BIRD may read it as its own user.
chmod 0644 "$tmp"
mv "$tmp" "$BIRD_CONF"
echo "wrote $BIRD_CONF with ${#clients[@]} client(s)"

if [ "${INSTALL:-true}" = true ]; then
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl enable --now bird
    systemctl reload bird
  elif command -v birdc >/dev/null && birdc show status >/dev/null 2>&1; then
    birdc configure
  else
    bird -c "$BIRD_CONF"
  fi
fi
