package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/daemon/store"
)

// Under a steady stream of writes, with readers reading all along (a list
// every millisecond), the WAL starts over instead of growing with
// everything written.
func TestWALStaysBoundedUnderSteadyWrites(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "w.db")
	const limit = 1 << 20
	st, err := open(ctx, path, limit, 20*time.Millisecond)
	require.NoError(t, err)
	defer st.Close()

	rctx, stop := context.WithCancel(ctx)
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for rctx.Err() == nil {
				_, _ = st.ListObjects(rctx, store.KindVM, store.ListOptions{Limit: 50})
				time.Sleep(time.Millisecond)
			}
		})
	}
	data := []byte(`{"pad":"` + strings.Repeat("x", 2000) + `"}`)
	// Write a fixed amount (a loaded machine takes longer, it does not
	// write less); the deadline only bounds a store that stalls.
	const target = 12 * limit
	var rows atomic.Int64
	deadline := time.Now().Add(2 * time.Minute)
	written := 0
	var writers sync.WaitGroup
	for w := range 8 {
		writers.Go(func() {
			for i := 0; rows.Load()*int64(len(data)) < target && time.Now().Before(deadline); i++ {
				id := fmt.Sprintf("w%d-%06d", w, i)
				if err := st.Update(ctx, func(tx store.Tx) error {
					return tx.CreateObject(ctx, &store.Object{Kind: store.KindVM, ID: id, Name: id, Data: data})
				}); err != nil {
					t.Error(err)
					return
				}
				rows.Add(1)
			}
		})
	}
	writers.Wait()
	stop()
	readers.Wait()
	n, err := st.CountObjects(ctx, store.KindVM, store.ListOptions{})
	require.NoError(t, err)
	written = n * len(data)
	fi, err := os.Stat(path + "-wal")
	require.NoError(t, err)
	t.Logf("wrote %d MiB of rows; WAL %d MiB", written>>20, fi.Size()>>20)
	require.Greater(t, written, 8*limit, "the test wrote too little to tell")
	assert.Less(t, fi.Size(), int64(16*limit), "the WAL grew with what was written")
}
