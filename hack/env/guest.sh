#!/bin/bash
# A guest for real boots: Debian's kernel and a busybox initramfs whose init
# prints a marker on the serial console. Packages are downloaded, not installed.
. "$(dirname "$0")/lib.sh"
D=$STATE/guest; mkdir -p "$D"
MARKER=VIRTPLANE-GUEST-BOOTED
VERSION=2   # bump when the initramfs changes, so existing machines rebuild it
if [ -s "$D/vmlinuz" ] && [ -s "$D/initrd.gz" ] && [ "$(cat "$D/version" 2>/dev/null)" = "$VERSION" ]; then
  say "guest kernel already in $D"
else
  ensure_pkgs cpio
  [ -f "$STATE/.apt-updated" ] || { apt-get -o DPkg::Lock::Timeout=900 update -q >/dev/null; touch "$STATE/.apt-updated"; }
  W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
  cd "$W"
  KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  [ -n "$KPKG" ] || die "no linux-image package found"
  apt-get download "$KPKG" busybox-static >/dev/null 2>&1 || die "apt-get download $KPKG busybox-static failed"
  dpkg-deb --fsys-tarfile "$KPKG"_*.deb | tar -x --wildcards './boot/vmlinuz-*' './lib/modules/*'
  mkdir -p bb ird/bin ird/proc ird/sys ird/dev ird/mnt ird/lib/modules/vpt
  dpkg-deb -x busybox-static_*.deb bb
  cp bb/bin/busybox ird/bin/
  cat >ird/init <<INIT
#!/bin/busybox sh
/bin/busybox --install -s
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
echo "$MARKER uptime=\$(cut -d' ' -f1 /proc/uptime)"
while true; do sleep 5; done
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
  cp boot/vmlinuz-* "$D/vmlinuz.tmp" && mv "$D/vmlinuz.tmp" "$D/vmlinuz"
  mv "$W/initrd.gz" "$D/initrd.gz"
  echo "$VERSION" >"$D/version"
  say "built guest kernel ($KPKG) and busybox initramfs in $D"
fi
write_env guest "KERNEL=$D/vmlinuz" "INITRD=$D/initrd.gz" "MARKER=$MARKER" "SEED_READER=/bin/vpt-seed"
