package daemon_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/notify"
	"github.com/virtplane/virtplane/daemon/scriptrun"
	"github.com/virtplane/virtplane/internal/testenv"
)

// dbaasGuest is the mount setup of a "VM" that can run the DBaaS built-in
// for real: PostgreSQL's directories are its own (tmpfs over the host's),
// so the PostgreSQL 15 installed on this machine (make env-postgres) runs
// a cluster of the VM's own on port 5432 of the VM's network namespace.
// One step is a test double, said here: apt-get, which would install the
// package from the network, is replaced by a script that does what the
// package's installation does on a machine that has the binaries already —
// pg_createcluster 15 main. Everything else is the built-in's own: service
// postgresql start, psql creating the role and the database, the
// listen_addresses and pg_hba.conf lines, the restart.
func dbaasGuest(t *testing.T) string {
	if _, err := os.Stat("/usr/lib/postgresql/15/bin/postgres"); err != nil {
		testenv.Missing(t, "PostgreSQL 15 binaries", "env-postgres", err)
	}
	stub := filepath.Join(t.TempDir(), "apt-get")
	require.NoError(t, os.WriteFile(stub, []byte("#!/bin/sh\n# test double of apt-get: the packages are installed; do what installing postgresql does\n"+
		"case \"$*\" in *install*postgresql*) pg_createcluster 15 main >/dev/null ;; esac\nexit 0\n"), 0o755))
	return fmt.Sprintf(`for d in /etc/postgresql /var/lib/postgresql /var/run/postgresql /var/log/postgresql; do mount -t tmpfs tmpfs "$d"; done
chown postgres:postgres /var/lib/postgresql /var/run/postgresql /var/log/postgresql
chmod 2775 /var/run/postgresql
mount --bind %s /usr/bin/apt-get`, stub)
}

// TestDBaaSOrderedWithAVM: a customer orders a VM with the DBaaS built-in
// as its script on create. The run waits for the VM, installs and starts
// PostgreSQL there, creates the database and its owner with a generated
// password, and mails the connection details to the customer through the
// go-smtp server on loopback; the test logs in to the database with them.
// The mail carries that password and no other secret; the password is in no
// answer, log or stored delivery.
func TestDBaaSOrderedWithAVM(t *testing.T) {
	setup := dbaasGuest(t)
	e := newScriptEnv(t, 1)
	ctx := t.Context()
	_, err := e.alice.SetUserEmail(ctx, e.aliceID, "alice@example.test")
	require.NoError(t, err)
	other := fmt.Sprintf("glob-%016x", rand.Uint64())
	_, err = e.admin.CreateScriptVariable(ctx, scriptrun.VariableBody{Name: "BACKUP_KEY", Value: other, Scope: "global", Hidden: true})
	require.NoError(t, err)

	body := e.vmBody("db1", "debian")
	body.Script = &scriptrun.OnCreate{ScriptID: "builtin:dbaas", Args: map[string]string{"DB_NAME": "shop", "DB_USER": "shop_owner"}, MailResult: true, TimeoutSeconds: 300}
	order, err := e.alice.CreateVMTask(ctx, body, "order-db1")
	require.NoError(t, err)
	require.NotNil(t, order.ScriptRun, "the create started the run")
	// The VM "boots": its sshd comes up with the key cloud-init was given,
	// after the create, while the run waits for it.
	require.NoError(t, client.TaskError(wait(t, e.alice, order.Task.ID, time.Minute)))
	vm, err := e.alice.GetVM(ctx, order.VM.ID)
	require.NoError(t, err)
	g := e.guestOf(t, vm)
	startGuestSSHD(t, g, vm.ScriptKey, setup)

	task := wait(t, e.alice, order.ScriptRun.ID, 5*time.Minute)
	run, err := e.alice.GetScriptRun(ctx, order.ScriptRun.ID)
	require.NoError(t, err)
	require.NoError(t, client.TaskError(task), "%+v", run.Targets)
	require.Len(t, run.Targets, 1)
	assert.True(t, run.OnCreate)
	assert.Contains(t, run.Targets[0].Stdout, "postgresql ready: database shop, user shop_owner, port 5432")
	assert.Equal(t, "alice@example.test", run.MailTo)
	require.NotEmpty(t, run.MailID, run.MailError)

	msgs := e.smtp.Wait(t, 1, time.Minute)
	require.Len(t, msgs, 1)
	m := msgs[0]
	assert.Equal(t, "alice@example.test", m.To)
	assert.Equal(t, "Script dbaas succeeded", m.Subject)
	field := func(name string) string {
		re := regexp.MustCompile(`(?m)^  ` + name + `:\s+(\S+)$`)
		got := re.FindStringSubmatch(m.Body)
		require.Len(t, got, 2, "the mail has no %s line:\n%s", name, m.Body)
		return got[1]
	}
	host, port, user, db, password := field("host"), field("port"), field("user"), field("database"), field("password")
	assert.Equal(t, g.addr, host)
	assert.Equal(t, "5432", port)
	assert.Equal(t, "shop_owner", user)
	assert.Equal(t, "shop", db)
	assert.Regexp(t, `^[A-Za-z0-9]{24}$`, password, "the generated password")
	assert.Equal(t, 1, strings.Count(m.Body, password), "the password is in the notice only")
	assert.NotContains(t, m.Body, other, "no other secret is in the mail")
	assert.NotContains(t, m.Body, vm.ScriptKey)

	// The details work.
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, fmt.Sprintf("postgres://%s:%s@%s:%s/%s?sslmode=disable", user, url.QueryEscape(password), host, port, db))
	require.NoError(t, err, "log in with the mailed details")
	defer conn.Close(context.Background())
	var who, where string
	require.NoError(t, conn.QueryRow(cctx, "SELECT current_user, current_database()").Scan(&who, &where))
	assert.Equal(t, "shop_owner", who)
	assert.Equal(t, "shop", where)
	_, err = pgx.Connect(cctx, fmt.Sprintf("postgres://%s:wrong-password@%s:%s/%s?sslmode=disable", user, host, port, db))
	require.Error(t, err, "the database is not open to any password")

	// The password is nowhere else.
	var everything strings.Builder
	for _, c := range []*client.Client{e.alice, e.admin} {
		r, err := c.GetScriptRun(ctx, run.ID)
		require.NoError(t, err)
		fmt.Fprintf(&everything, "%+v", r)
		lines, err := c.GetTaskLog(ctx, run.ID)
		require.NoError(t, err)
		fmt.Fprintf(&everything, "%+v", lines)
		ds, err := c.ListDeliveries(ctx, "", 100)
		require.NoError(t, err)
		fmt.Fprintf(&everything, "%+v", ds)
	}
	assert.NotContains(t, everything.String(), password)
	d, err := e.alice.GetDelivery(ctx, run.MailID)
	require.NoError(t, err)
	assert.Equal(t, notify.StateDelivered, d.State)
	assert.True(t, d.Sensitive)
	o, err := e.st.GetObject(ctx, notify.KindDelivery, run.MailID)
	require.NoError(t, err)
	assert.NotContains(t, string(o.Data), password, "the delivered mail's body is gone from the store")
	assert.NotContains(t, run.Targets[0].Stdout, password)
}
