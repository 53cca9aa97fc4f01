package smoke

import (
	"database/sql"
	"path/filepath"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/virtplane/virtplane/internal/testenv"
)

// roundTrip creates a table, writes a row in a transaction and reads it back.
func roundTrip(t *testing.T, db *sql.DB, table, placeholder string) {
	t.Helper()
	ctx := t.Context()
	_, err := db.ExecContext(ctx, "CREATE TABLE "+table+" (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = db.Exec("DROP TABLE IF EXISTS " + table) })
	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	_, err = tx.ExecContext(ctx, "INSERT INTO "+table+" (id, name) VALUES (1, "+placeholder+")", "vm-1")
	require.NoError(t, err)
	require.NoError(t, tx.Commit())
	var name string
	require.NoError(t, db.QueryRowContext(ctx, "SELECT name FROM "+table+" WHERE id = 1").Scan(&name))
	assert.Equal(t, "vm-1", name)
}

// TestPostgres talks to the private PostgreSQL cluster through pgx's
// database/sql driver.
func TestPostgres(t *testing.T) {
	env := testenv.RequirePostgres(t)
	db, err := sql.Open("pgx", env.DSN)
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.PingContext(t.Context()))
	roundTrip(t, db, "vpt_smoke_"+uniqueName("t")[8:], "$1")
}

// TestSQLite uses the pure-Go SQLite driver in WAL mode.
func TestSQLite(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "smoke.db")+"?_pragma=journal_mode(WAL)")
	require.NoError(t, err)
	defer db.Close()
	var mode string
	require.NoError(t, db.QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&mode))
	assert.Equal(t, "wal", mode)
	roundTrip(t, db, "smoke", "?")
}
