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
# Loop devices left on an earlier pv.img of ours whose state directory was
# removed (the file is gone, the device stays): their copy of the VG would
# shadow the one made now.
losetup -l -n -O NAME,BACK-FILE | while read -r dev back; do
  case "$back" in "$D/pv.img (deleted)") losetup -d "$dev" && say "detached $dev (left on a removed pv.img)" ;; esac
done
on_loop() { [ "$(pvs --noheadings -o vg_name "$1" 2>/dev/null | tr -d ' ')" = "$VG" ]; }
LOOP=""
[ -s "$D/loop" ] && LOOP=$(cat "$D/loop")
if [ -n "$LOOP" ] && losetup "$LOOP" 2>/dev/null | grep -q "$D/pv.img" && on_loop "$LOOP"; then
  say "volume group $VG already on $LOOP"
else
  [ -f "$D/pv.img" ] || truncate -s 20G "$D/pv.img"
  LOOP=$(losetup -j "$D/pv.img" | cut -d: -f1 | head -1)
  [ -n "$LOOP" ] || LOOP=$(losetup -f --show "$D/pv.img")
  echo "$LOOP" >"$D/loop"
  if ! on_loop "$LOOP"; then
    pvcreate -y -ff "$LOOP" >/dev/null
    vgcreate "$VG" "$LOOP" >/dev/null
  fi
  on_loop "$LOOP" || die "volume group $VG is not on $LOOP: $(pvs 2>&1 | tr '\n' ' ')"
  say "volume group $VG on $LOOP (file $D/pv.img, sparse 20 GiB)"
fi
write_env lvm "SYSTEM_DIR=$D/conf" "VG=$VG" "PV=$LOOP"
