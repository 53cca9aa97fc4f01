#!/bin/bash
# A guest for real boots: Debian's kernel and a busybox initramfs whose init
# prints a marker on the serial console (and, with vpt.seed=1 on its command
# line, the cloud-init seed it reads), then a heartbeat every second. Also a
# bootable disk of it (DISK, qcow2: syslinux on a FAT file system, no
# partition table), so that a VM the daemon creates from an OS image boots
# it. Kernel and busybox packages are downloaded, not installed.
. "$(dirname "$0")/lib.sh"
D=$STATE/guest; mkdir -p "$D"
MARKER=VIRTPLANE-GUEST-BOOTED
VERSION=3   # bump when the initramfs changes, so existing machines rebuild it
if [ -s "$D/vmlinuz" ] && [ -s "$D/initrd.gz" ] && [ -s "$D/disk.qcow2" ] && [ "$(cat "$D/version" 2>/dev/null)" = "$VERSION" ]; then
  say "guest kernel already in $D"
else
  ensure_pkgs cpio syslinux syslinux-common mtools dosfstools qemu-utils
  [ -f "$STATE/.apt-updated" ] || { apt-get -o DPkg::Lock::Timeout=900 update -q >/dev/null; touch "$STATE/.apt-updated"; }
  W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
  cd "$W"
  KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  [ -n "$KPKG" ] || die "no linux-image package found"
  apt-get download "$KPKG" busybox-static >/dev/null 2>&1 || die "apt-get download $KPKG busybox-static failed"
  dpkg-deb --fsys-tarfile "$KPKG"_*.deb | tar -x --wildcards './boot/vmlinuz-*' './lib/modules/*'
  mkdir -p bb ird/bin ird/sbin ird/usr/bin ird/usr/sbin ird/proc ird/sys ird/dev ird/mnt ird/lib/modules/vpt
  dpkg-deb -x busybox-static_*.deb bb
  cp bb/bin/busybox ird/bin/
  cat >ird/init <<INIT
#!/bin/busybox sh
/bin/busybox --install -s
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
echo "$MARKER uptime=\$(cut -d' ' -f1 /proc/uptime)"
case "\$(cat /proc/cmdline)" in *vpt.seed=1*) /bin/vpt-seed ;; esac
i=0
while true; do i=\$((i+1)); echo "VPT-TICK \$i"; sleep 1; done
INIT
  chmod +x ird/init
  # The CD-ROM stack (IDE on QEMU's pc machine) and iso9660 are modules in
  # Debian's kernel; /bin/vpt-seed loads them, mounts the cloud-init seed
  # (label cidata) and prints its files, so tests can see what the guest reads.
  MODS="scsi_common scsi_mod libata ata_piix cdrom sr_mod isofs"
  for m in $MODS; do
    f=$(find lib/modules -name "$m.ko*" | head -1)
    [ -n "$f" ] || die "module $m not in $KPKG"
    case "$f" in *.xz) xz -dc "$f" >"ird/lib/modules/vpt/$m.ko" ;; *) cp "$f" "ird/lib/modules/vpt/$m.ko" ;; esac
  done
  cat >ird/bin/vpt-seed <<SEED
#!/bin/busybox sh
for m in $MODS; do insmod /lib/modules/vpt/\$m.ko 2>/dev/null; done
for i in \$(seq 50); do [ -b /dev/sr0 ] && break; sleep 0.2; done
mount -t iso9660 -o ro /dev/sr0 /mnt || { echo "VPT-SEED none"; exit 1; }
for f in meta-data user-data network-config; do
  [ -f /mnt/\$f ] && sed "s/^/VPT-SEED \$f: /" /mnt/\$f
done
echo "VPT-SEED end"
SEED
  chmod +x ird/bin/vpt-seed
  (cd ird && find . | cpio -o -H newc 2>/dev/null | gzip -1 >"$W/initrd.gz")
  # The bootable disk: syslinux in the boot sector of a FAT file system
  # that fills the disk; it loads the same kernel and initramfs.
  cat >syslinux.cfg <<CFG
SERIAL 0 115200
DEFAULT vpt
PROMPT 0
TIMEOUT 0
LABEL vpt
  KERNEL /vmlinuz
  INITRD /initrd.gz
  APPEND console=ttyS0 panic=-1 vpt.seed=1
CFG
  truncate -s 48M disk.img
  mkfs.vfat -n VPTGUEST disk.img >/dev/null
  mcopy -i disk.img boot/vmlinuz-* ::/vmlinuz
  mcopy -i disk.img "$W/initrd.gz" ::/initrd.gz
  mcopy -i disk.img syslinux.cfg ::/syslinux.cfg
  syslinux --install disk.img
  qemu-img convert -q -f raw -O qcow2 disk.img "$D/disk.qcow2.tmp"
  mv "$D/disk.qcow2.tmp" "$D/disk.qcow2"
  cp boot/vmlinuz-* "$D/vmlinuz.tmp" && mv "$D/vmlinuz.tmp" "$D/vmlinuz"
  mv "$W/initrd.gz" "$D/initrd.gz"
  echo "$VERSION" >"$D/version"
  say "built guest kernel ($KPKG) and busybox initramfs in $D"
fi
write_env guest "KERNEL=$D/vmlinuz" "INITRD=$D/initrd.gz" "DISK=$D/disk.qcow2" "MARKER=$MARKER" "SEED_READER=/bin/vpt-seed"
