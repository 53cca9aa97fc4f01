#!/bin/bash
# sshd on 127.0.0.1:22022 with throw-away host and client keys (no PAM).
. "$(dirname "$0")/lib.sh"
D=$STATE/ssh; mkdir -p "$D"
PORT=${VIRTPLANE_SSH_PORT:-22022}
# ansible-core: the scripts/ansible runner plays against this sshd.
ensure_pkgs openssh-server openssh-client ansible-core procps
if alive "$D/sshd.pid" && tcp_answers 127.0.0.1 "$PORT"; then
  say "sshd already listens on 127.0.0.1:$PORT"
else
  rm -f "$D"/hostkey* "$D"/client* "$D/sshd.pid"
  ssh-keygen -q -t ed25519 -N '' -f "$D/hostkey"
  ssh-keygen -q -t ed25519 -N '' -f "$D/client"
  cp "$D/client.pub" "$D/authorized_keys"
  printf '[127.0.0.1]:%s %s\n' "$PORT" "$(cut -d' ' -f1,2 "$D/hostkey.pub")" >"$D/known_hosts"
  cat >"$D/sshd_config" <<C
ListenAddress 127.0.0.1:$PORT
HostKey $D/hostkey
PidFile $D/sshd.pid
AuthorizedKeysFile $D/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxSessions 64
MaxStartups 64:30:128
C
  mkdir -p /run/sshd && chmod 755 /run/sshd   # privilege separation dir, required
  /usr/sbin/sshd -f "$D/sshd_config" -E "$D/sshd.log"
  wait_for sshd 10 tcp_answers 127.0.0.1 "$PORT"
  say "started sshd on 127.0.0.1:$PORT (pid $(cat "$D/sshd.pid"))"
fi
write_env ssh "ADDR=127.0.0.1:$PORT" "USER=root" "KEY=$D/client" "KNOWN_HOSTS=$D/known_hosts"
