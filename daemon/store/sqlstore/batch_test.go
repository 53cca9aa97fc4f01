package sqlstore_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/daemon/store/sqlite"
)

// In a group-commit batch each Update commits or rolls back alone, wherever
// the failures fall: first, in the middle, last, all, or none.
func TestBatchUpdatesStandAlone(t *testing.T) {
	for _, fails := range []string{"", "0", "1", "2", "02", "012", "12"} {
		t.Run("fail"+fails, func(t *testing.T) {
			ctx := t.Context()
			st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "b.db"))
			require.NoError(t, err)
			defer st.Close()
			boom := errors.New("boom")
			var fs []func(store.Tx) error
			for i := range 3 {
				fail := containsDigit(fails, i)
				fs = append(fs, func(tx store.Tx) error {
					// Each writes before it decides, so a failure has something to undo.
					if err := tx.CreateObject(ctx, &store.Object{Kind: store.KindImage, ID: fmt.Sprint(i), Name: fmt.Sprint("img", i)}); err != nil {
						return err
					}
					if fail {
						return boom
					}
					return nil
				})
			}
			errs := st.RunBatch(ctx, fs...)
			for i, err := range errs {
				_, gerr := st.GetObject(ctx, store.KindImage, fmt.Sprint(i))
				if containsDigit(fails, i) {
					assert.ErrorIs(t, err, boom, "update %d", i)
					assert.ErrorIs(t, gerr, virtplane.ErrNotFound, "update %d rolled back", i)
				} else {
					assert.NoError(t, err, "update %d", i)
					assert.NoError(t, gerr, "update %d committed", i)
				}
			}
			// The store goes on working after the batch.
			require.NoError(t, st.Update(ctx, func(tx store.Tx) error {
				return tx.CreateObject(ctx, &store.Object{Kind: store.KindImage, ID: "after", Name: "after"})
			}))
		})
	}
}

func containsDigit(s string, i int) bool {
	for _, c := range s {
		if int(c-'0') == i {
			return true
		}
	}
	return false
}
