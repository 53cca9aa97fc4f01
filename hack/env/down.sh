#!/bin/bash
# Stop every daemon the hack/env scripts started, by the pid files they wrote,
# and detach the LVM loop device. Installed packages stay.
. "$(dirname "$0")/lib.sh"
stop_pidfile() { # NAME PIDFILE
  alive "$2" || return 0
  local pid; pid=$(cat "$2")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do alive "$2" || break; sleep 0.1; done
  alive "$2" && kill -9 "$pid" 2>/dev/null
  say "stopped $1 (pid $pid)"
}
if [ -d "$STATE/iscsi" ] && [ -S /var/run/tgtd/socket.77 ]; then
  # tgtd ignores SIGTERM while a target exists.
  tgtadm -C 77 --lld iscsi --op delete --force --mode target --tid 1 2>/dev/null || true
  tgtadm -C 77 --op delete --mode system 2>/dev/null || true
fi
stop_pidfile tgtd "$STATE/iscsi/tgtd.pid"
for f in "$STATE"/ceph/run/osd.*.pid "$STATE"/ceph/run/mon.*.pid; do [ -f "$f" ] && stop_pidfile "ceph $(basename "$f" .pid)" "$f"; done
stop_pidfile sshd "$STATE/ssh/sshd.pid"
stop_pidfile slapd "$STATE/ldap/slapd.pid"
if [ -d "$STATE/postgres/data" ]; then
  B=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  runuser -u postgres -- "$B/pg_ctl" -D "$STATE/postgres/data" -m fast stop >/dev/null 2>&1 && say "stopped postgres"
fi
if [ -s "$STATE/lvm/loop" ]; then
  export LVM_SYSTEM_DIR=$STATE/lvm/conf LVM_SUPPRESS_FD_WARNINGS=1
  vgchange -an >/dev/null 2>&1 || true
  losetup -d "$(cat "$STATE/lvm/loop")" 2>/dev/null && say "detached $(cat "$STATE/lvm/loop")"
  rm -f "$STATE/lvm/loop"
fi
stop_pidfile lxd "$STATE/lxd/tini.pid"
stop_pidfile "libvirtd" "$STATE/libvirt/libvirtd.pid"
stop_pidfile "virtlogd" "$STATE/libvirt/virtlogd.pid"
stop_pidfile "libvirt tini" "$STATE/libvirt/tini.pid"
rm -f "$STATE"/*.env
