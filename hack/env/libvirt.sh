#!/bin/bash
# libvirtd + virtlogd with the QEMU driver (software emulation: there is no
# /dev/kvm here), running under tini so that dead QEMUs are reaped at once.
. "$(dirname "$0")/lib.sh"
D=$STATE/libvirt; mkdir -p "$D"
ensure_pkgs libvirt-daemon libvirt-daemon-driver-qemu qemu-system-x86 qemu-utils libvirt-clients tini
SOCK=/run/libvirt/libvirt-sock
if [ -S "$SOCK" ] && timeout 10 virsh -c qemu:///system version >/dev/null 2>&1; then
  say "libvirtd already answers on $SOCK"
else
  # Debian's QEMU driver resolves libvirt-qemu at start even when qemu.conf
  # says root; libvirt-daemon-system would create it but pulls in systemd.
  getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
  id libvirt-qemu >/dev/null 2>&1 || useradd -r -g libvirt-qemu -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
  mkdir -p /etc/libvirt /var/log/libvirt/qemu   # virtlogd refuses to start without /var/log/libvirt
  # root:root, or QEMU chowns the image files it opens.
  printf 'user = "root"\ngroup = "root"\n' >/etc/libvirt/qemu.conf
  cat >/etc/libvirt/libvirtd.conf <<'CONF'
unix_sock_group = "root"
unix_sock_rw_perms = "0770"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
CONF
  cat >"$D/run.sh" <<'RUN'
#!/bin/sh
virtlogd -d --pid-file "$1/virtlogd.pid"
exec libvirtd --config /etc/libvirt/libvirtd.conf --pid-file "$1/libvirtd.pid"
RUN
  chmod +x "$D/run.sh"
  setsid tini -s -- "$D/run.sh" "$D" >"$D/daemon.out" 2>&1 </dev/null &
  echo $! >"$D/tini.pid"
  wait_for "libvirtd" 30 virsh -c qemu:///system version
  say "started libvirtd (tini pid $(cat "$D/tini.pid"), log /var/log/libvirt/libvirtd.log)"
fi
write_env libvirt "URI=qemu:///system" "SOCKET=$SOCK"
