#!/bin/bash
# Remove what a crashed test run may have left: network namespaces named
# vpt-* (the prefix internal/testenv gives its namespaces), with their
# processes, libvirt domains / LXD instances named vpt-*, and the network
# ports the daemon made in the root namespace: taps and bridges named vpt*,
# shaping's IFB devices vpi*, nftables tables vpt-*.
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
# Domains first (above): their taps go with them; what is left is ours.
for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^(vpt|vpi)' || true); do
  ip link del "$l" 2>/dev/null && say "removed link $l"
done
if command -v nft >/dev/null; then
  nft list tables 2>/dev/null | awk '$3 ~ /^vpt-/ {print $2, $3}' | while read -r fam name; do
    nft delete table "$fam" "$name" 2>/dev/null && say "removed nft table $fam $name"
  done
fi
if command -v lxc >/dev/null && [ -S /var/lib/lxd/unix.socket ]; then
  for c in $(lxc list --format csv -c n 2>/dev/null | grep '^vpt-' || true); do
    lxc delete --force "$c" && say "removed lxd instance $c"
  done
fi
if [ -f "$STATE/ceph/ceph.conf" ] && command -v rbd >/dev/null; then
  export CEPH_CONF=$STATE/ceph/ceph.conf
  for img in $(timeout 20 rbd ls rbd 2>/dev/null | grep '^vpt-' || true); do
    for snap in $(timeout 10 rbd snap ls "rbd/$img" --format json 2>/dev/null | grep -o '"name":"[^"]*"' | cut -d'"' -f4); do
      timeout 10 rbd snap unprotect "rbd/$img@$snap" >/dev/null 2>&1 || true
    done
    timeout 20 rbd snap purge "rbd/$img" >/dev/null 2>&1 || true
    timeout 20 rbd rm "rbd/$img" >/dev/null 2>&1 && say "removed rbd image $img"
  done
fi
if [ -f "$STATE/lvm.env" ]; then
  export LVM_SYSTEM_DIR=$STATE/lvm/conf LVM_SUPPRESS_FD_WARNINGS=1
  VG=$(sed -n 's/^VG=//p' "$STATE/lvm.env")
  for lv in $(lvs --noheadings -o lv_name "$VG" 2>/dev/null | awk '$1 ~ /^vpt-/ {print $1}'); do
    lvremove -y "$VG/$lv" >/dev/null 2>&1 && say "removed lv $VG/$lv"
  done
fi
