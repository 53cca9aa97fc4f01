package auth

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
)

// SourceLDAP marks the accounts of directory users.
const SourceLDAP = "ldap"

// LDAPRoles maps a directory's groups to roles.
type LDAPRoles struct {
	// AdminGroups: a member of one is an admin.
	AdminGroups []string
	// UserGroups: a member of one (and of no admin group) is a user. Empty:
	// every directory user who is not an admin is a user; otherwise the
	// others may not sign in.
	UserGroups []string
}

// role returns the role of a user in groups, or false when they may not
// sign in.
func (r LDAPRoles) role(groups []string) (model.Role, bool) {
	in := func(names []string) bool {
		return slices.ContainsFunc(names, func(g string) bool { return slices.Contains(groups, g) })
	}
	switch {
	case in(r.AdminGroups):
		return model.RoleAdmin, true
	case len(r.UserGroups) == 0 || in(r.UserGroups):
		return model.RoleUser, true
	}
	return "", false
}

// LDAP signs directory users in: it proves their password with the
// directory, gives them the role of their groups, and keeps an account in
// the store for each (source "ldap", made at the first sign-in) that
// tokens belong to. Sync disables the accounts of users gone from the
// directory, or from every group that may sign in, so their tokens stop
// working; a later sign-in enables them again.
type LDAP struct {
	st    store.Store
	dir   Directory
	roles LDAPRoles
}

// NewLDAP returns the authenticator over dir.
func NewLDAP(st store.Store, dir Directory, roles LDAPRoles) *LDAP {
	return &LDAP{st: st, dir: dir, roles: roles}
}

// Authenticate proves name's password with the directory and returns their
// account, made or brought up to date.
func (l *LDAP) Authenticate(ctx context.Context, name, password string) (model.User, error) {
	if model.ValidName("name", name) != nil {
		return model.User{}, virtplane.Errorf(virtplane.ErrUnauthenticated, "wrong user name or password")
	}
	du, err := l.dir.Authenticate(ctx, name, password)
	if err != nil {
		return model.User{}, err
	}
	role, ok := l.roles.role(du.Groups)
	if !ok {
		return model.User{}, virtplane.Errorf(virtplane.ErrPermissionDenied, "directory user %q is in no group that may sign in", name)
	}
	var u model.User
	err = l.st.Update(ctx, func(tx store.Tx) error {
		o, err := tx.GetObjectByName(ctx, store.KindUser, "", name)
		if errors.Is(err, virtplane.ErrNotFound) {
			u = model.User{ID: store.NewID(), Name: name, Role: role, Source: SourceLDAP, Created: time.Now().UTC()}
			data, err := json.Marshal(userRecord{User: u})
			if err != nil {
				return err
			}
			return tx.CreateObject(ctx, &store.Object{Kind: store.KindUser, ID: u.ID, Name: name, Owner: u.ID, Data: data})
		}
		if err != nil {
			return err
		}
		if u, err = DecodeUser(o); err != nil {
			return err
		}
		if u.Source != SourceLDAP {
			return virtplane.Errorf(virtplane.ErrConflict, "user %q is a %s account, not the directory's", name, u.Source)
		}
		if u.Role == role && !u.Disabled {
			return nil
		}
		u.Role, u.Disabled = role, false
		return l.save(ctx, tx, o, u)
	})
	return u, err
}

func (l *LDAP) save(ctx context.Context, tx store.Tx, o store.Object, u model.User) error {
	data, err := json.Marshal(userRecord{User: u})
	if err != nil {
		return err
	}
	o.Data = data
	return tx.UpdateObject(ctx, &o)
}

// Sync looks every directory account up in the directory: a user gone from
// it, or from every group that may sign in, is disabled; one whose groups
// changed gets the role they give. It returns the IDs of the accounts it
// changed. A directory out of reach changes nothing (its error is returned):
// an outage must not lock everyone out.
func (l *LDAP) Sync(ctx context.Context) ([]string, error) {
	var changed []string
	opts := store.ListOptions{Limit: 1000}
	for {
		objs, err := l.st.ListObjects(ctx, store.KindUser, opts)
		if err != nil {
			return changed, err
		}
		for _, o := range objs {
			u, err := DecodeUser(o)
			if err != nil {
				return changed, err
			}
			if u.Source != SourceLDAP {
				continue
			}
			du, err := l.dir.Lookup(ctx, u.Name)
			var role model.Role
			ok := false
			switch {
			case errors.Is(err, virtplane.ErrNotFound):
			case err != nil:
				return changed, err
			default:
				role, ok = l.roles.role(du.Groups)
			}
			if !ok && u.Disabled || ok && u.Role == role {
				continue
			}
			err = l.st.Update(ctx, func(tx store.Tx) error {
				cur, err := tx.GetObject(ctx, store.KindUser, u.ID)
				if err != nil {
					return err
				}
				nu, err := DecodeUser(cur)
				if err != nil {
					return err
				}
				if ok {
					// A user disabled for being gone comes back by signing in.
					nu.Role = role
				} else {
					nu.Disabled = true
				}
				return l.save(ctx, tx, cur, nu)
			})
			if errors.Is(err, virtplane.ErrNotFound) {
				continue // deleted meanwhile
			}
			if err != nil {
				return changed, err
			}
			changed = append(changed, u.ID)
		}
		if len(objs) < opts.Limit {
			return changed, nil
		}
		opts.After = objs[len(objs)-1].ID
	}
}

// SyncDirectories runs Sync on the service's LDAP authenticators and
// forgets the verified tokens of the accounts they changed, so that a
// disabled user's tokens stop working at once.
func (s *Service) SyncDirectories(ctx context.Context) error {
	var errs []error
	for _, a := range s.authenticators {
		l, ok := a.(*LDAP)
		if !ok {
			continue
		}
		ids, err := l.Sync(ctx)
		for _, id := range ids {
			s.Forget(id)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
