// Package dbtest gives tests a fresh store: a SQLite file in the test's
// temporary directory, or a private PostgreSQL database (named vpt_<random>,
// created through the admin DSN of testenv and dropped at cleanup, so tests
// of different packages running in parallel never share one).
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"path/filepath"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver for the admin connection
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/daemon/store/postgres"
	"github.com/virtplane/virtplane/daemon/store/sqlite"
	"github.com/virtplane/virtplane/daemon/store/sqlstore"
	"github.com/virtplane/virtplane/internal/testenv"
)

// SQLite opens a store in a new file under t.TempDir.
func SQLite(t testing.TB) *sqlstore.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "virtplane.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// PostgresDSN creates a private database and returns its DSN; the database
// is dropped when the test ends.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	pg := testenv.RequirePostgres(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "vpt_" + hex.EncodeToString(b)
	admin, err := sql.Open("pgx", pg.AdminDSN)
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.Close() })
	_, err = admin.Exec("CREATE DATABASE " + name)
	require.NoError(t, err)
	u, err := url.Parse(pg.DSN)
	require.NoError(t, err)
	// The test user must own its database so migrations can create tables.
	_, err = admin.Exec("ALTER DATABASE " + name + " OWNER TO " + u.User.Username())
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
	})
	u.Path = "/" + name
	return u.String()
}

// Postgres opens a store on a private database.
func Postgres(t testing.TB) *sqlstore.Store {
	t.Helper()
	st, err := postgres.Open(context.Background(), PostgresDSN(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st
}
