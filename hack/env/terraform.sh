#!/bin/bash
# A real Terraform CLI for the provider's acceptance tests, built once from the
# Go module proxy (v1.5.7, the last MPL-2.0 release; about 2 minutes and 95 MB)
# and kept in the state directory so later runs start at once.
. "$(dirname "$0")/lib.sh"
VERSION=1.5.7
D=$STATE/terraform; mkdir -p "$D"
BIN=$D/bin/terraform
if [ -x "$BIN" ] && "$BIN" version 2>/dev/null | head -1 | grep -qx "Terraform v$VERSION"; then
  say "terraform v$VERSION already in $D/bin"
else
  command -v go >/dev/null || die "go is not on PATH"
  say "building terraform v$VERSION (about 2 minutes)"
  start=$(date +%s)
  GOBIN=$D/bin GOFLAGS=-buildvcs=false nice -n 10 go install "github.com/hashicorp/terraform@v$VERSION" >"$D/build.log" 2>&1 \
    || { tail -20 "$D/build.log" >&2; die "go install github.com/hashicorp/terraform@v$VERSION failed"; }
  "$BIN" version | head -1 | grep -qx "Terraform v$VERSION" || die "$BIN does not print Terraform v$VERSION"
  say "built terraform v$VERSION in $(( $(date +%s) - start ))s"
fi
write_env terraform "BIN=$BIN" "VERSION=$VERSION"
