package postgres

import (
	"github.com/jackc/pgx/v5"

	"github.com/virtplane/virtplane"
)

func pgconnConfig(dsn string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// The parse error may echo the password; name the field only.
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "postgres dsn is malformed")
	}
	return cfg, nil
}
