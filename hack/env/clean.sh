#!/bin/bash
# Remove what a crashed test run may have left: network namespaces named
# vpt-* (the prefix internal/testenv gives its namespaces), with their
# processes, and libvirt domains / LXD instances named vpt-*.
. "$(dirname "$0")/lib.sh"
for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^vpt-/ {print $1}'); do
  for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
  ip netns del "$ns" && say "removed netns $ns"
done
if command -v virsh >/dev/null && [ -S /run/libvirt/libvirt-sock ]; then
  for d in $(virsh -c qemu:///system list --all --name 2>/dev/null | grep '^vpt-' || true); do
    virsh -c qemu:///system destroy "$d" >/dev/null 2>&1 || true
    virsh -c qemu:///system undefine "$d" --snapshots-metadata --nvram >/dev/null 2>&1 || virsh -c qemu:///system undefine "$d" >/dev/null 2>&1 || true
    say "removed domain $d"
  done
fi
if command -v lxc >/dev/null && [ -S /var/lib/lxd/unix.socket ]; then
  for c in $(lxc list --format csv -c n 2>/dev/null | grep '^vpt-' || true); do
    lxc delete --force "$c" && say "removed lxd instance $c"
  done
fi
