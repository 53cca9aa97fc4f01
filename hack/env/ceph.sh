#!/bin/bash
# A single-node Ceph Pacific cluster on loopback: one mon and one memstore OSD
# (no disk needed), no mgr (RBD works without it and it costs ~300 MB), an
# `rbd` pool, cephx off. Data lives in memory: a restart gives an empty cluster.
. "$(dirname "$0")/lib.sh"
C=$STATE/ceph; mkdir -p "$C"
ensure_pkgs ceph-mon ceph-osd ceph-common librados-dev librbd-dev uuid-runtime
export CEPH_CONF=$C/ceph.conf
if [ -f "$CEPH_CONF" ] && alive "$C/run/mon.a.pid" && timeout 10 ceph osd stat 2>/dev/null | grep -q '1 up' && timeout 10 rbd ls rbd >/dev/null 2>&1; then
  say "ceph already up (conf $CEPH_CONF)"
else
  # Stop leftovers of an earlier run by their pid files before starting anew.
  for f in "$C"/run/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  sleep 0.5
  rm -rf "$C"/{mon,osd,run,log,keyring,monmap}; mkdir -p "$C"/{mon,osd,run,log}
  FSID=$(uuidgen)
  cat >"$CEPH_CONF" <<CONF
[global]
fsid = $FSID
mon host = v2:127.0.0.1:3300
mon initial members = a
public addr = 127.0.0.1
public network = 127.0.0.0/8
cluster addr = 127.0.0.1
ms bind ipv6 = false
ms bind msgr1 = false
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = false
mon warn on insecure global id reclaim allowed = false
run dir = $C/run
admin socket = $C/run/\$cluster-\$name.asok
pid file = $C/run/\$name.pid
log file = $C/log/\$cluster-\$name.log
log to stderr = false
err to stderr = true
mon data = $C/mon/\$cluster-\$id
osd data = $C/osd/\$cluster-\$id
keyring = $C/keyring
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
osd objectstore = memstore
memstore device bytes = 2147483648
osd memory target = 1073741824
osd op num shards = 1
osd op num threads per shard = 1
mon data avail warn = 2
mon data avail crit = 1
mgr initial modules =
[osd]
keyring = $C/osd/\$cluster-\$id/keyring
CONF
  monmaptool --create --fsid "$FSID" --addv a '[v2:127.0.0.1:3300]' "$C/monmap" >/dev/null
  ceph-authtool --create-keyring "$C/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$C/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
  ceph-mon --mkfs -i a --monmap "$C/monmap" --keyring "$C/keyring"
  ceph-mon -i a
  wait_for "ceph mon" 60 timeout 5 ceph -s --connect-timeout 5
  OSDUUID=$(uuidgen)
  ID=$(ceph osd new "$OSDUUID")
  mkdir -p "$C/osd/ceph-$ID"
  ceph auth get-or-create "osd.$ID" mon 'allow profile osd' osd 'allow *' -o "$C/osd/ceph-$ID/keyring" >/dev/null
  ceph-osd -i "$ID" --mkfs --osd-uuid "$OSDUUID" >/dev/null 2>&1
  ceph-osd -i "$ID"
  wait_for "ceph osd" 60 sh -c 'ceph osd stat | grep -q "1 up"'
  ceph osd pool create rbd 8 8 >/dev/null 2>&1
  rbd pool init rbd
  say "started ceph mon.a + osd.$ID (memstore) on 127.0.0.1:3300, pool rbd (conf $CEPH_CONF)"
fi
write_env ceph "CONF=$CEPH_CONF" "POOL=rbd" "MON_ADDR=127.0.0.1:3300" "USER=admin"
