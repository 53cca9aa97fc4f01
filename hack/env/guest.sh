#!/bin/bash
# A guest for real boots: Debian's kernel and a busybox initramfs whose init
# prints a marker on the serial console. Packages are downloaded, not installed.
. "$(dirname "$0")/lib.sh"
D=$STATE/guest; mkdir -p "$D"
MARKER=VIRTPLANE-GUEST-BOOTED
if [ -s "$D/vmlinuz" ] && [ -s "$D/initrd.gz" ]; then
  say "guest kernel already in $D"
else
  ensure_pkgs cpio
  [ -f "$STATE/.apt-updated" ] || { apt-get -o DPkg::Lock::Timeout=900 update -q >/dev/null; touch "$STATE/.apt-updated"; }
  W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
  cd "$W"
  KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  [ -n "$KPKG" ] || die "no linux-image package found"
  apt-get download "$KPKG" busybox-static >/dev/null 2>&1 || die "apt-get download $KPKG busybox-static failed"
  dpkg-deb --fsys-tarfile "$KPKG"_*.deb | tar -x --wildcards './boot/vmlinuz-*'
  mkdir -p bb ird/bin ird/proc ird/sys ird/dev
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
  (cd ird && find . | cpio -o -H newc 2>/dev/null | gzip -1 >"$W/initrd.gz")
  cp boot/vmlinuz-* "$D/vmlinuz.tmp" && mv "$D/vmlinuz.tmp" "$D/vmlinuz"
  mv "$W/initrd.gz" "$D/initrd.gz"
  say "built guest kernel ($KPKG) and busybox initramfs in $D"
fi
write_env guest "KERNEL=$D/vmlinuz" "INITRD=$D/initrd.gz" "MARKER=$MARKER"
