#!/bin/bash
# BIRD 2 and FRR for the BGP fabric and EVPN tests. Only installed here: each
# test starts its own bird/bgpd inside network namespaces it creates, so
# nothing runs between tests. The packages' own services are not started
# (there is no init system here) and their default instances stay down.
. "$(dirname "$0")/lib.sh"
ensure_pkgs bird2 frr iproute2
write_env bgp "BIRD=/usr/sbin/bird" "BIRDC=/usr/sbin/birdc" "BGPD=/usr/lib/frr/bgpd" "VTYSH=/usr/bin/vtysh"
say "bird $(bird --version 2>&1 | awk '{print $NF}') and frr bgpd installed (tests start their own instances)"
