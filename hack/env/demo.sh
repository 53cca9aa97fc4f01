#!/bin/bash
# A small bootable demo disk: a FAT disk with SYSLINUX, the test guest's
# kernel and an initramfs whose init prints a banner on the screen and the
# serial console, then a heartbeat (VPT-TICK n) on the serial console.
# `make run` registers it as the first OS image, so a first VM boots to a
# banner; the daemon's real tests boot it, rescue it and snapshot it.
. "$(dirname "$0")/lib.sh"
# The guest's kernel and initramfs: make env-demo runs env-guest first.
[ -s "$STATE/guest.env" ] || die "no guest kernel: run hack/env/guest.sh (make env-guest) first"
. "$STATE/guest.env"
D=$STATE/demo; mkdir -p "$D"
VERSION="2-guest$(cat "$STATE/guest/version" 2>/dev/null)"   # bump the 1 when the image changes; a new guest rebuilds it too
BANNER=VIRTPLANE-DEMO-BOOTED
if [ -s "$D/demo.raw" ] && [ "$(cat "$D/version" 2>/dev/null)" = "$VERSION" ]; then
  say "demo image already in $D"
else
  ensure_pkgs syslinux syslinux-common mtools dosfstools cpio
  W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
  mkdir -p "$W/ird"
  cat >"$W/ird/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
hostname vpt-demo
banner() {
  echo
  echo "  virtplane demo VM"
  echo "  $BANNER uptime=\$(cut -d' ' -f1 /proc/uptime) cmdline=\$(cat /proc/cmdline)"
  echo "  a busybox guest: it boots, prints this and counts."
  echo
  echo "vpt-demo login: (no login in the demo image)"
}
banner >/dev/tty0 2>/dev/null
banner >/dev/ttyS0 2>/dev/null
i=0
while true; do i=\$((i+1)); echo "VPT-TICK \$i" >/dev/ttyS0; sleep 1; done
INIT
  chmod +x "$W/ird/init"
  (cd "$W/ird" && echo init | cpio -o -H newc 2>/dev/null) >"$W/overlay.cpio"
  # The kernel unpacks concatenated archives in order; the later /init wins.
  # An archive after a compressed one must start at a multiple of 4 bytes.
  size=$(stat -c %s "$INITRD")
  { cat "$INITRD"; head -c $(( (4 - size % 4) % 4 )) /dev/zero; cat "$W/overlay.cpio"; } >"$W/initrd.img"
  cat >"$W/syslinux.cfg" <<CFG
DEFAULT demo
PROMPT 0
TIMEOUT 0
LABEL demo
  KERNEL vmlinuz
  APPEND initrd=initrd.img console=tty0 console=ttyS0 panic=-1 quiet
CFG
  truncate -s 64M "$W/demo.raw"
  mkfs.vfat -n VPTDEMO "$W/demo.raw" >/dev/null
  syslinux --install "$W/demo.raw"
  MTOOLS_SKIP_CHECK=1 mcopy -i "$W/demo.raw" "$KERNEL" ::/vmlinuz
  MTOOLS_SKIP_CHECK=1 mcopy -i "$W/demo.raw" "$W/initrd.img" ::/initrd.img
  MTOOLS_SKIP_CHECK=1 mcopy -i "$W/demo.raw" "$W/syslinux.cfg" ::/syslinux.cfg
  mv "$W/demo.raw" "$D/demo.raw"
  chmod 0644 "$D/demo.raw"
  echo "$VERSION" >"$D/version"
  say "built the demo image $D/demo.raw (SYSLINUX, $(basename "$KERNEL"), busybox)"
fi
write_env demo "IMAGE=$D/demo.raw" "FORMAT=raw" "BANNER=$BANNER" "TICK=VPT-TICK"
