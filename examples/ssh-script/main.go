// Command ssh-script runs a script from the scripts package on a host over
// SSH, without the daemon, with a hidden variable: the script gets the
// secret (as an environment variable, never spliced into its text), and the
// output the executor hands back shows it masked even where the script
// printed it.
//
//	go run ./examples/ssh-script -addr 127.0.0.1:22 -user root -key ~/.ssh/id_ed25519 -known-hosts ~/.ssh/known_hosts
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/virtplane/virtplane/scripts"
	"github.com/virtplane/virtplane/scripts/ssh"
)

// Options say where the script runs.
type Options struct {
	Addr, User, KeyFile, KnownHosts string
	// Secret is the hidden variable's value.
	Secret string
}

func main() {
	var o Options
	flag.StringVar(&o.Addr, "addr", "127.0.0.1:22", "host:port of the SSH server")
	flag.StringVar(&o.User, "user", "root", "login user")
	flag.StringVar(&o.KeyFile, "key", "", "private key file (PEM)")
	flag.StringVar(&o.KnownHosts, "known-hosts", "", "known_hosts file holding the server's host key")
	flag.StringVar(&o.Secret, "secret", "s3cret-db-passw0rd", "value of the hidden variable DB_PASSWORD")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout, o); err != nil {
		fmt.Fprintln(os.Stderr, "ssh-script:", err)
		os.Exit(1)
	}
}

// The script prints the secret on purpose (as a careless script would)
// and its SHA-256, which shows that the real value reached it.
const body = `echo "configuring $APP for $WHO"
echo "password is $DB_PASSWORD"
printf '%s' "$DB_PASSWORD" | sha256sum | cut -d' ' -f1
`

func run(ctx context.Context, out io.Writer, o Options) error {
	key, err := os.ReadFile(o.KeyFile)
	if err != nil {
		return err
	}
	runner, err := ssh.New(ssh.Config{Credentials: ssh.Credentials{User: o.User, PrivateKey: key}, KnownHostsFile: o.KnownHosts})
	if err != nil {
		return err
	}
	ex, err := scripts.NewExecutor(scripts.ExecutorConfig{Runner: runner})
	if err != nil {
		return err
	}
	s := scripts.Script{
		Name: "configure-app", Owner: "alice", Visibility: scripts.Private, Kind: scripts.Shell, Body: body,
		Params: []scripts.Param{{Name: "WHO", Type: scripts.String, Required: true}},
	}
	res, err := ex.Run(ctx, scripts.RunRequest{
		Script: s, User: "alice",
		// A hostile-looking argument stays data: it is printed, not run.
		Args:    map[string]string{"WHO": "bob; rm -rf /tmp/nothing"},
		Globals: []scripts.Variable{{Name: "APP", Value: "billing", Scope: scripts.Global}},
		Locals:  []scripts.Variable{{Name: "DB_PASSWORD", Value: o.Secret, Scope: scripts.Local, Owner: "alice", Hidden: true}},
		Targets: []scripts.Target{{Name: "host1", Address: o.Addr}},
		Timeout: time.Minute,
	})
	if err != nil {
		return err
	}
	for _, t := range res.Targets {
		fmt.Fprintf(out, "target %s: %s, exit code %d\n", t.Target, t.Status, t.ExitCode)
		for _, line := range strings.Split(strings.TrimRight(t.Stdout, "\n"), "\n") {
			fmt.Fprintf(out, "  | %s\n", line)
		}
		if t.Error != "" {
			fmt.Fprintf(out, "  error: %s\n", t.Error)
		}
	}
	sum := sha256.Sum256([]byte(o.Secret))
	want := hex.EncodeToString(sum[:])
	if len(res.Targets) == 1 && strings.Contains(res.Targets[0].Stdout, want) {
		fmt.Fprintln(out, "the script received the real secret (its SHA-256 matches); the output shows it masked")
	}
	if strings.Contains(fmt.Sprint(res), o.Secret) {
		return fmt.Errorf("the secret leaked into the result")
	}
	return nil
}
