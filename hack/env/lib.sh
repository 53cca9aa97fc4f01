# Shared helpers for the hack/env scripts. Sourced, not run.
# Every script is idempotent: it installs what is missing, starts what is not
# running, leaves what runs, and records what tests need in $STATE/<name>.env
# (read by internal/testenv).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
STATE=${VIRTPLANE_TESTENV:-/var/tmp/virtplane-testenv}
mkdir -p "$STATE"

say() { printf '[env] %s\n' "$*"; }
die() { printf '[env] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (the test environment starts system daemons)"

# ensure_pkgs PKG...: apt-get install the packages not installed yet.
ensure_pkgs() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]}"
  # One update per boot of the state dir: apt-cache and install need fresh lists.
  if [ ! -f "$STATE/.apt-updated" ]; then
    apt-get -o DPkg::Lock::Timeout=900 update -q >"$STATE/apt-update.log" 2>&1 || { cat "$STATE/apt-update.log" >&2; die "apt-get update failed"; }
    touch "$STATE/.apt-updated"
  fi
  apt-get -o DPkg::Lock::Timeout=900 install -y -q --no-install-recommends "${missing[@]}" >"$STATE/apt-install.log" 2>&1 \
    || { tail -30 "$STATE/apt-install.log" >&2; die "apt-get install ${missing[*]} failed"; }
}

# write_env NAME KEY=VALUE...: record a component's state for the tests.
write_env() {
  local name=$1; shift
  printf '%s\n' "# written by hack/env at $(date -u +%FT%TZ)" "$@" >"$STATE/$name.env.tmp"
  mv "$STATE/$name.env.tmp" "$STATE/$name.env"
}

# wait_for DESC SECONDS CMD...: poll CMD every 0.1 s until it succeeds.
wait_for() {
  local desc=$1 secs=$2; shift 2
  local i
  for i in $(seq $((secs * 10))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "$desc did not come up within ${secs}s"
}

# alive PIDFILE: the process in PIDFILE runs and is not a zombie
# (PID 1 here does not reap, so kill -0 alone is not proof of life).
alive() {
  local pid
  [ -s "$1" ] || return 1
  pid=$(cat "$1")
  [ -d "/proc/$pid" ] || return 1
  ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null
}

# tcp_answers HOST PORT
tcp_answers() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }
