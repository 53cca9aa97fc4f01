// Package ssh runs scripts.Rendered shell and PowerShell scripts on targets
// over SSH (golang.org/x/crypto/ssh): key or password login, host keys
// checked against a known_hosts file, stdout and stderr streamed as they
// arrive, the exit code reported, and on timeout or cancel the remote
// process killed before Run returns.
//
// The script never travels on the command line, which other users of the
// target can read: a small wrapper (see Command) reads it from stdin into a
// private temporary file, starts it in its own process group, and keeps
// reading stdin; when the runner closes stdin, or the connection drops, the
// wrapper kills the whole process group.
//
//	r, err := ssh.New(ssh.Config{
//		Credentials:    ssh.Credentials{User: "root", PrivateKey: pem},
//		KnownHostsFile: "/etc/virtplane/known_hosts",
//	})
//	code, err := r.Run(ctx, scripts.Job{Target: vm, Script: rendered, Timeout: time.Minute, Stdout: os.Stdout})
//
// PowerShell scripts are started with powershell.exe -EncodedCommand and a
// bootstrap that reads the script from stdin; on Windows the kill on cancel
// relies on the SSH server ending the session's processes.
package ssh
