// Package sqlite is the daemon's embedded store: one SQLite file in WAL mode
// through modernc.org/sqlite (pure Go, no cgo), migrated with goose from the
// SQL files embedded in the binary.
//
//	st, err := sqlite.Open(ctx, "./var/virtplane.db")
//	if err != nil { return err }
//	defer st.Close()
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Open opens (creating when absent) the SQLite database at path, brings its
// schema up to date and returns the store.
func Open(ctx context.Context, path string) (*sqlstore.Store, error) {
	return open(ctx, path, walRestartSize, time.Second)
}

// open opens the store; past walLimit, looked at every walEvery, the WAL
// starts over (walRestarter).
func open(ctx context.Context, path string, walLimit int64, walEvery time.Duration) (*sqlstore.Store, error) {
	if path == "" {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "sqlite path is empty")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "sqlite path %q: %v", path, err)
	}
	// synchronous(NORMAL) in WAL mode: a commit survives a process crash
	// (the kill -9 the crash test does); only a power loss can lose the last
	// commits, never corrupt the file.
	pragmas := "_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(ON)"
	u := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + pragmas
	// The writer never checkpoints: a checkpoint copies pages into the
	// database file and syncs it, and while the writer did that every
	// change of the daemon waited. The checkpointer connection does it in
	// the background (checkpointer), beside the writer.
	write, err := sql.Open("sqlite", u+"&_txlock=immediate&_pragma=wal_autocheckpoint(0)")
	if err != nil {
		return nil, virtplane.Errorf(virtplane.ErrUnavailable, "open %s: %v", path, err)
	}
	// One writer: SQLite serializes writers anyway, and a single connection
	// makes them queue in Go instead of spinning on SQLITE_BUSY.
	write.SetMaxOpenConns(1)
	if err := migrate(ctx, write); err != nil {
		_ = write.Close()
		return nil, err
	}
	read, err := sql.Open("sqlite", u+"&_pragma=query_only(ON)")
	if err != nil {
		_ = write.Close()
		return nil, virtplane.Errorf(virtplane.ErrUnavailable, "open %s: %v", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0)*2)
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)
	// A bigger page cache for the writer (Dialect.WriterSetup, PRAGMA
	// cache_size) was measured: 8% less CPU per VM at 30,000 VMs, none at
	// 100,000, and 100 MiB more resident memory. Left at the default.
	ckpt, err := sql.Open("sqlite", u)
	if err != nil {
		_ = write.Close()
		_ = read.Close()
		return nil, virtplane.Errorf(virtplane.ErrUnavailable, "open %s: %v", path, err)
	}
	ckpt.SetMaxOpenConns(1)
	return sqlstore.New(read, write, sqlstore.Dialect{Name: "sqlite", IsUnique: isUnique, IsBusy: isBusy, GroupCommit: true, CacheStatements: true,
		Maintain:   func(ctx context.Context) { checkpointer(ctx, ckpt) },
		AfterBatch: walRestarter(path+"-wal", walLimit, walEvery, time.Now)}), nil
}

// walRestartSize is the WAL size past which the writer lets it start over.
const walRestartSize = 64 << 20

// walRestarter returns the group committer's AfterBatch: every so often
// (every) it looks at the WAL's size, and past limit it runs a TRUNCATE
// checkpoint on the writer. The background checkpointer copies the WAL
// into the database while writes go on, but the WAL can only start over
// once a checkpoint has caught up with the last write, which under a
// steady stream of writes happens only on the writer, between two of them;
// left alone the WAL grew by 20 MB/s under load and the readers slowed
// with it. The background checkpointer has already copied nearly all of
// it, so the writer's checkpoint is short. A checkpoint that finds the
// background one running, or readers still in the WAL after 10 ms, is
// tried again a quarter of the interval later.
func walRestarter(walPath string, limit int64, every time.Duration, now func() time.Time) func(context.Context, *sql.Conn) {
	var next time.Time
	return func(ctx context.Context, conn *sql.Conn) {
		t := now()
		if t.Before(next) {
			return
		}
		if fi, err := os.Stat(walPath); err != nil || fi.Size() < limit {
			next = t.Add(every)
			return
		}
		// The checkpoint waits for readers of the WAL to finish; the
		// writer waits with it only briefly, then tries again later.
		var busy, frames, copied int
		_, _ = conn.ExecContext(ctx, "PRAGMA busy_timeout(10)")
		err := conn.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &frames, &copied)
		_, _ = conn.ExecContext(ctx, "PRAGMA busy_timeout(10000)")
		if err == nil && busy == 0 {
			next = t.Add(every)
		} else {
			next = t.Add(every / 4)
		}
	}
}

// checkpointInterval is how often the WAL is copied back into the database
// file. At a thousand creates a second the WAL grows by a few MiB a second.
const checkpointInterval = 250 * time.Millisecond

// checkpointer copies the WAL into the database file in the background
// (PASSIVE: beside the writer and the readers, never waiting for them)
// until ctx ends, then truncates the WAL and closes db.
func checkpointer(ctx context.Context, db *sql.DB) {
	defer db.Close()
	t := time.NewTicker(checkpointInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			_, _ = db.ExecContext(context.Background(), "PRAGMA wal_checkpoint(TRUNCATE)")
			return
		case <-t.C:
			_, _ = db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
		}
	}
}

func migrate(ctx context.Context, db *sql.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, sub, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return virtplane.Errorf(virtplane.ErrUnavailable, "migrate sqlite schema: %v", err)
	}
	return nil
}

func isUnique(err error) bool {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

func isBusy(err error) bool {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code()&0xff == sqlite3.SQLITE_BUSY || e.Code()&0xff == sqlite3.SQLITE_LOCKED
	}
	return false
}
