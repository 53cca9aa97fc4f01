package sqlite_test

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/daemon/store/sqlite"
	"github.com/virtplane/virtplane/daemon/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return dbtest.SQLite(t) })
}

// The writer never checkpoints; the background checkpointer copies the WAL
// into the database file while the store runs: the rows are in the file
// itself (read with immutable=1, which ignores the WAL) without a Close.
func TestCheckpointerCopiesTheWAL(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "c.db")
	st, err := sqlite.Open(ctx, path)
	require.NoError(t, err)
	defer st.Close()
	for i := range 50 {
		require.NoError(t, st.Update(ctx, func(tx store.Tx) error {
			return tx.CreateObject(ctx, &store.Object{Kind: store.KindImage, ID: fmt.Sprint(i), Name: fmt.Sprint("img", i)})
		}))
	}
	require.Eventually(t, func() bool {
		// A new handle each time: an immutable one never looks again.
		raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro&immutable=1")
		if err != nil {
			return false
		}
		defer raw.Close()
		var n int
		err = raw.QueryRowContext(ctx, "SELECT COUNT(*) FROM objects WHERE kind = 'image'").Scan(&n)
		return err == nil && n == 50
	}, 10*time.Second, 100*time.Millisecond, "the rows never reached the database file")
}
