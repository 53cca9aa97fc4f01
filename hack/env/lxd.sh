#!/bin/bash
# LXD with a dir storage pool, NO managed network, and a busybox image.
# Never `lxd init --auto`: it probes random 10.x addresses on TCP 22 to pick a
# subnet for a managed bridge, which sends traffic off this machine.
. "$(dirname "$0")/lib.sh"
D=$STATE/lxd; mkdir -p "$D"
export LXD_DIR=/var/lib/lxd
SOCK=$LXD_DIR/unix.socket
ensure_pkgs lxd tini busybox-static
if [ -S "$SOCK" ] && timeout 10 lxc query /1.0 >/dev/null 2>&1; then
  say "lxd already answers on $SOCK"
else
  mkdir -p "$LXD_DIR"
  setsid tini -s -- lxd --group root --logfile="$D/lxd.log" >"$D/lxd.out" 2>&1 </dev/null &
  echo $! >"$D/tini.pid"
  lxd waitready --timeout=120 || die "lxd not ready (see $D/lxd.log)"
  say "started lxd (tini pid $(cat "$D/tini.pid"), log $D/lxd.log)"
fi
if ! lxc storage show default >/dev/null 2>&1; then
  lxd init --preseed <<'YAML'
config:
  images.auto_update_interval: "0"
storage_pools:
- name: default
  driver: dir
profiles:
- name: default
  devices:
    root:
      path: /
      pool: default
      type: disk
YAML
  say "lxd initialised: dir pool 'default', no network"
fi
# The test image. Its init is a shell that ignores LXD's shutdown signal
# (SIGPWR): a guest that ignores a clean shutdown, as the conformance
# suite expects (busybox's own init ends the container a second or two
# after a caller's timeout instead). Force stops (SIGKILL) end it. The
# alias names the image's version: a changed image gets a new one.
IMG=busybox-3
for old in busybox busybox-2; do lxc image delete "$old" >/dev/null 2>&1 || true; done
if ! lxc image info "$IMG" >/dev/null 2>&1; then
  W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
  R=$W/rootfs; mkdir -p "$R"/{bin,sbin,etc,proc,sys,dev,tmp,root,run,usr/bin,usr/sbin}
  cp /bin/busybox "$R/bin/"
  for a in $("$R/bin/busybox" --list-full); do [ -e "$R/$a" ] || ln -s /bin/busybox "$R/$a"; done
  rm -f "$R/sbin/init"
  printf '#!/bin/sh\ntrap "" PWR\nwhile :; do sleep 3600 & wait; done\n' >"$R/sbin/init"; chmod 755 "$R/sbin/init"
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$R/etc/passwd"; printf 'root:x:0:\n' >"$R/etc/group"
  printf 'architecture: x86_64\ncreation_date: %s\nproperties:\n  os: busybox\n  description: busybox test image\n' "$(date +%s)" >"$W/metadata.yaml"
  tar -C "$W" -czf "$W/meta.tar.gz" metadata.yaml
  tar -C "$R" -czf "$W/rootfs.tar.gz" .
  lxc image import "$W/meta.tar.gz" "$W/rootfs.tar.gz" --alias "$IMG" >/dev/null
  say "imported the $IMG image"
fi
write_env lxd "SOCKET=$SOCK" "POOL=default" "IMAGE=$IMG"
