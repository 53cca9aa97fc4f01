package sqlstore

import (
	"context"
	"database/sql"

	"github.com/virtplane/virtplane/daemon/store"
)

// RunBatch runs fs as one group-commit batch, as the committer does, and
// returns each one's error. Call it before any Update: it takes the write
// pool's one connection for the time of the batch.
func (s *Store) RunBatch(ctx context.Context, fs ...func(store.Tx) error) []error {
	conn, err := s.write.Conn(ctx)
	if err != nil {
		panic(err)
	}
	w := &connQuerier{conn: conn, stmts: map[string]*sql.Stmt{}, cache: true}
	defer w.close()
	batch := make([]*update, len(fs))
	for i, f := range fs {
		batch[i] = &update{ctx: ctx, f: f, done: make(chan error, 1)}
	}
	s.runBatch(ctx, w, batch)
	errs := make([]error, len(batch))
	for i, u := range batch {
		errs[i] = <-u.done
	}
	return errs
}
