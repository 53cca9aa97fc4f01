#!/bin/bash
# Which domain type runs guests here, decided once per libvirtd: the libvirt
# driver's own detection (domain capabilities, then a kvm boot of the test
# guest), confirmed by booting the test guest with the chosen type. A
# /dev/kvm can exist and run nothing, so it is never looked at. Tests take
# the result from internal/testenv (DOMAIN_TYPE in domaintype.env).
# VIRTPLANE_DOMAIN_TYPE=kvm|qemu forces the type (still checked by a boot).
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
D=$STATE/domaintype; mkdir -p "$D"; chmod 755 "$D"
[ -s "$STATE/libvirt.env" ] || die "libvirtd is not set up: run make env-libvirt first"
[ -s "$STATE/guest.env" ] || die "the test guest is not built: run make env-guest first"
. "$STATE/libvirt.env"; . "$STATE/guest.env"
PID=$(cat "$STATE/libvirt/libvirtd.pid" 2>/dev/null || true)
if [ -s "$STATE/domaintype.env" ] && grep -qx "LIBVIRTD_PID=$PID" "$STATE/domaintype.env" \
   && grep -qx "FORCED=${VIRTPLANE_DOMAIN_TYPE:-}" "$STATE/domaintype.env"; then
  say "domain type already decided for this libvirtd: $(grep ^DOMAIN_TYPE= "$STATE/domaintype.env")"
  exit 0
fi
args=(-socket "$SOCKET" -state "$D" -kernel "$KERNEL" -initrd "$INITRD" -marker "$MARKER")
if [ -n "${VIRTPLANE_DOMAIN_TYPE:-}" ]; then
  case $VIRTPLANE_DOMAIN_TYPE in kvm|qemu) ;; *) die "VIRTPLANE_DOMAIN_TYPE=$VIRTPLANE_DOMAIN_TYPE: want kvm or qemu" ;; esac
  args+=(-force "$VIRTPLANE_DOMAIN_TYPE")
fi
out=$(cd "$ROOT" && go run ./hack/env/domaintype "${args[@]}") || die "could not decide the domain type (see above)"
mapfile -t lines <<<"$out"
write_env domaintype "${lines[@]}" "LIBVIRTD_PID=$PID" "FORCED=${VIRTPLANE_DOMAIN_TYPE:-}"
say "domain type here: $(printf '%s\n' "$out" | tr '\n' ' ')"
