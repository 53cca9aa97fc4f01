#!/bin/bash
# lvm2 for metadata-only use: this kernel has no device-mapper, so LVs are
# never activated (global/activation=0). A VG on a loop device backs the tests.
. "$(dirname "$0")/lib.sh"
D=$STATE/lvm; mkdir -p "$D/conf"
VG=${VIRTPLANE_LVM_VG:-vgvirtplane}
ensure_pkgs lvm2
cat >"$D/conf/lvm.conf" <<'C'
global { activation = 0 }
activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
devices { obtain_device_list_from_udev = 0 external_device_info_source = "none" }
backup { backup = 0 archive = 0 }
C
export LVM_SYSTEM_DIR=$D/conf LVM_SUPPRESS_FD_WARNINGS=1
LOOP=""
[ -s "$D/loop" ] && LOOP=$(cat "$D/loop")
if [ -n "$LOOP" ] && losetup "$LOOP" 2>/dev/null | grep -q "$D/pv.img" && vgs "$VG" >/dev/null 2>&1; then
  say "volume group $VG already on $LOOP"
else
  [ -f "$D/pv.img" ] || truncate -s 20G "$D/pv.img"
  LOOP=$(losetup -j "$D/pv.img" | cut -d: -f1 | head -1)
  [ -n "$LOOP" ] || LOOP=$(losetup -f --show "$D/pv.img")
  echo "$LOOP" >"$D/loop"
  if ! vgs "$VG" >/dev/null 2>&1; then
    pvcreate -y -ff "$LOOP" >/dev/null
    vgcreate "$VG" "$LOOP" >/dev/null
  fi
  say "volume group $VG on $LOOP (file $D/pv.img, sparse 20 GiB)"
fi
write_env lvm "SYSTEM_DIR=$D/conf" "VG=$VG" "PV=$LOOP"
