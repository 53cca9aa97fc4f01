#!/bin/bash
# tgt (userspace iSCSI target) on 127.0.0.1:3260 with one file-backed LUN.
# QEMU and qemu-img reach it through libiscsi (no kernel initiator here).
. "$(dirname "$0")/lib.sh"
D=$STATE/iscsi; mkdir -p "$D"
CP=77   # tgtd control port: selects the management socket /var/run/tgtd/socket.77
T=iqn.2026-01.io.virtplane:test
PORTAL=127.0.0.1:3260
ensure_pkgs tgt qemu-utils qemu-block-extra
# Ready means: our tgtd runs, its control socket knows the target, and it
# is the one listening on the portal (a second tgtd takes the control
# socket, and logins on the portal would not find what it makes).
if alive "$D/tgtd.pid" && tgtadm -C $CP --lld iscsi --op show --mode target 2>/dev/null | grep -q "LUN: 2" &&
  ss -Htlnp "sport = :${PORTAL##*:}" | grep -F "$PORTAL " | grep -q "pid=$(cat "$D/tgtd.pid"),"; then
  say "tgtd already serves $T on $PORTAL"
else
  [ -f "$D/lun1.img" ] || truncate -s 1G "$D/lun1.img"
  [ -f "$D/lun2.img" ] || truncate -s 64M "$D/lun2.img"   # scratch LUN of the smoke test
  # A tgtd of ours that does not answer as it should goes first: a second
  # one would take the control socket while the first keeps the portal,
  # and logins would find none of the targets made through the socket.
  # (SIGKILL: tgtd ignores SIGTERM while it has targets, and one whose
  # control socket was taken over cannot be told to stop.)
  if pkill -9 -f "^tgtd -C $CP -p $D/tgtd.pid" 2>/dev/null; then
    wait_for "the old tgtd to stop" 10 bash -c "! pgrep -f '^tgtd -C $CP -p $D/tgtd.pid' >/dev/null"
  fi
  rm -f /var/run/tgtd/socket.$CP /var/run/tgtd/socket.$CP.lock
  setsid tgtd -C $CP -p "$D/tgtd.pid" --iscsi portal=$PORTAL </dev/null >"$D/tgtd.out" 2>&1
  wait_for tgtd 10 test -S /var/run/tgtd/socket.$CP
  tgtadm -C $CP --lld iscsi --op new --mode target --tid 1 -T $T
  tgtadm -C $CP --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b "$D/lun1.img"
  tgtadm -C $CP --lld iscsi --op new --mode logicalunit --tid 1 --lun 2 -b "$D/lun2.img"
  tgtadm -C $CP --lld iscsi --op bind --mode target --tid 1 -I ALL
  wait_for "iscsi portal" 10 tcp_answers 127.0.0.1 3260
  say "started tgtd on $PORTAL (pid $(cat "$D/tgtd.pid")), LUN 1 = $D/lun1.img"
fi
write_env iscsi "PORTAL=$PORTAL" "TARGET=$T" "URL=iscsi://$PORTAL/$T/1" "FILE=$D/lun1.img" "CONTROL_PORT=$CP" \
  "SCRATCH_URL=iscsi://$PORTAL/$T/2" "SCRATCH_FILE=$D/lun2.img"
