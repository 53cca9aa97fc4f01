#!/bin/bash
# vpt as an operator's script uses it: log in, build a cluster, create a VM
# with --wait, and branch on exit codes. Run by TestShellVMCreateWait with
# VPT (the binary), URL (a daemon on simulated nodes) and VPT_CONFIG set.
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }

echo admin-password | "$VPT" login "$URL" --user admin --password-stdin >/dev/null
"$VPT" cluster create --name fra1 >/dev/null
"$VPT" node add --cluster fra1 --name n1 --address sim --cores 4 --memory-mib 8192 --disk-gib 100 >/dev/null
"$VPT" pool create --name public --cluster fra1 --block 192.0.2.0/28,192.0.2.1 >/dev/null
"$VPT" image create --name debian-12 --source /var/lib/virtplane/images/debian-12.qcow2 >/dev/null

# --wait returns once the VM runs, with its address; progress goes to stderr.
out=$("$VPT" vm create --name web1 --cluster fra1 --image debian-12 --pool public \
  --cpus 2 --memory-mib 1024 --disk-gib 10 --wait 2>"$WORK/progress")
echo "$out"
grep -Eq '^[0-9a-f]{24} +web1 +running +2 +1024 +10 +192\.0\.2\.2 ' <<<"$out" || fail "vm create --wait printed: $out"
grep -q 'vm.create \[####################\] 100% succeeded' "$WORK/progress" || fail "no final progress line: $(cat "$WORK/progress")"

# The VM is there, by name, in JSON.
"$VPT" vm get web1 -o json | grep -q '"state": "running"' || fail "vm get -o json"

# Exit codes tell the error class.
set +e
"$VPT" vm get no-such-vm 2>/dev/null; nf=$?
"$VPT" vm create --name big --cluster fra1 --image debian-12 --pool public --cpus 64 --memory-mib 1024 --disk-gib 10 --wait 2>/dev/null; full=$?
"$VPT" vm create --name web1 --cluster fra1 --image debian-12 --pool public --cpus 1 --memory-mib 512 --disk-gib 10 2>/dev/null; dup=$?
set -e
[ "$nf" = 3 ] || fail "vm get of a missing VM exited $nf, not 3 (not found)"
[ "$full" = 9 ] || fail "a VM no node can take exited $full, not 9 (resource exhausted)"
[ "$dup" = 4 ] || fail "a second web1 exited $dup, not 4 (already exists)"

"$VPT" vm delete web1 --wait
echo OK
