#!/bin/bash
# A real Terraform CLI for the provider's acceptance tests, built once from the
# Go module proxy (v1.5.7, the last MPL-2.0 release; about 2 minutes and 95 MB)
# and kept in the state directory so later runs start at once.
. "$(dirname "$0")/lib.sh"
VERSION=1.5.7
D=$STATE/terraform; mkdir -p "$D"
BIN=$D/bin/terraform
# `terraform version` asks HashiCorp's checkpoint service whether it is out
# of date unless told not to; no configuration file either.
export CHECKPOINT_DISABLE=1 TF_CLI_CONFIG_FILE=/dev/null
built() { [ -x "$BIN" ] && "$BIN" version -json 2>/dev/null | grep -q "\"terraform_version\": \"$VERSION\""; }
if built; then
  say "terraform v$VERSION already in $D/bin"
else
  command -v go >/dev/null || die "go is not on PATH"
  say "building terraform v$VERSION (about 2 minutes)"
  start=$(date +%s)
  GOBIN=$D/bin GOFLAGS=-buildvcs=false nice -n 10 go install "github.com/hashicorp/terraform@v$VERSION" >"$D/build.log" 2>&1 \
    || { tail -20 "$D/build.log" >&2; die "go install github.com/hashicorp/terraform@v$VERSION failed"; }
  built || die "$BIN does not say it is Terraform $VERSION"
  say "built terraform v$VERSION in $(( $(date +%s) - start ))s"
fi
write_env terraform "BIN=$BIN" "VERSION=$VERSION"
