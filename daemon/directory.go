package daemon

import (
	"context"
	"time"

	"github.com/virtplane/virtplane/daemon/auth"
)

// directoryAuth is the sign-in through the configured directory, if any.
func directoryAuth(cfg Config) []auth.Option {
	if cfg.Directory == nil {
		return nil
	}
	return []auth.Option{auth.WithAuthenticator(auth.NewLDAP(cfg.Store, cfg.Directory, cfg.DirectoryRoles))}
}

// syncDirectory disables, every DirectorySync until ctx ends, the accounts
// of users gone from the directory (their tokens stop working).
func (s *Server) syncDirectory(ctx context.Context) {
	if s.cfg.Directory == nil {
		return
	}
	every := s.cfg.DirectorySync
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.Auth.SyncDirectories(ctx); err != nil && ctx.Err() == nil && s.cfg.Logger != nil {
			s.cfg.Logger.Warn("directory sync", "err", err)
		}
	}
}
