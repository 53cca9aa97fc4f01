// Package postgres is the daemon's shared store: PostgreSQL through pgx,
// for several daemons sharing one state. The schema is migrated with goose
// from SQL files embedded in the binary, under a session advisory lock so
// daemons starting together do not race.
//
//	st, err := postgres.Open(ctx, "postgres://virtplane@db/virtplane")
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Open connects to the database named by dsn, brings its schema up to date
// and returns the store.
func Open(ctx context.Context, dsn string) (*sqlstore.Store, error) {
	if dsn == "" {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "postgres dsn is empty")
	}
	cfg, err := pgconnConfig(dsn)
	if err != nil {
		return nil, err
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, virtplane.Errorf(virtplane.ErrUnavailable, "connect to postgres: %v", err)
	}
	if err := migrate(ctx, db); err != nil {
		_ = db.Close()
		return nil, err
	}
	return sqlstore.New(db, db, sqlstore.Dialect{Name: "postgres", Numbered: true, IsUnique: isUnique, IsBusy: isBusy}), nil
}

func migrate(ctx context.Context, db *sql.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub, goose.WithDisableGlobalRegistry(true), goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return virtplane.Errorf(virtplane.ErrUnavailable, "migrate postgres schema: %v", err)
	}
	return nil
}

func isUnique(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == "23505"
}

func isBusy(err error) bool {
	var e *pgconn.PgError
	// serialization_failure, deadlock_detected
	return errors.As(err, &e) && (e.Code == "40001" || e.Code == "40P01")
}
