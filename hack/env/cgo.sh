#!/bin/bash
# The C headers and libraries cgo builds need: the Ceph driver (go-ceph,
# `-tags 'ceph pacific'`) compiles against librados and librbd. `make lint`
# vets with that tag, so it needs them even before `make env` runs.
. "$(dirname "$0")/lib.sh"
ensure_pkgs gcc librados-dev librbd-dev
say "cgo headers (librados, librbd) installed"
