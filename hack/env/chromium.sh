#!/bin/bash
# Headless Chromium for the browser tests (the console page). Installed from
# Debian; every test starts its own instance with a fresh profile directory
# and the flags below, on loopback only.
. "$(dirname "$0")/lib.sh"
ensure_pkgs chromium fonts-dejavu-core
BIN=$(command -v chromium) || die "chromium not on PATH after install"
"$BIN" --version >/dev/null 2>&1 || die "$BIN does not run"
write_env chromium "BIN=$BIN" \
  "FLAGS=--headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking --disable-component-update --disable-sync --disable-default-apps --mute-audio"
say "chromium: $("$BIN" --version 2>/dev/null)"
