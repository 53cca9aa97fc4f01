#!/bin/bash
# Prometheus 2.42 and promtool from Debian's prometheus package, for the test
# that evaluates every Grafana dashboard query against a live daemon. The
# package is downloaded and unpacked into the state directory, not installed:
# installing it would start a system Prometheus, and each test starts its own.
. "$(dirname "$0")/lib.sh"
D=$STATE/prometheus; mkdir -p "$D"
if [ -x "$D/bin/prometheus" ] && [ -x "$D/bin/promtool" ] && "$D/bin/prometheus" --version 2>&1 | grep -q 'version 2\.42'; then
  say "prometheus already in $D/bin"
else
  start=$(date +%s)
  [ -f "$STATE/.apt-updated" ] || { apt-get -o DPkg::Lock::Timeout=900 update -q >"$STATE/apt-update.log" 2>&1; touch "$STATE/.apt-updated"; }
  W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
  (cd "$W" && apt-get download prometheus >/dev/null 2>&1) || die "apt-get download prometheus failed"
  dpkg-deb -x "$W"/prometheus_*.deb "$W/x"
  mkdir -p "$D/bin"
  cp "$W/x/usr/bin/prometheus" "$W/x/usr/bin/promtool" "$D/bin/"
  "$D/bin/prometheus" --version 2>&1 | grep -q 'version 2\.42' || die "$D/bin/prometheus is not 2.42"
  say "unpacked prometheus $("$D/bin/prometheus" --version 2>&1 | head -1 | awk '{print $3}') into $D/bin in $(( $(date +%s) - start ))s"
fi
write_env prometheus "PROMETHEUS=$D/bin/prometheus" "PROMTOOL=$D/bin/promtool"
