package auth

import (
	"context"
	"slices"
	"sync"

	"github.com/virtplane/virtplane"
)

// Directory is an account directory that proves passwords (an LDAP or
// FreeIPA server): what the LDAP authenticator asks of it. The one real
// implementation is LDAPDirectory; FakeDirectory serves tests. Both pass
// the suite in package directorytest.
type Directory interface {
	// Authenticate proves name's password by binding as the user, and
	// returns their entry. A wrong password, an unknown user and an empty
	// password are ErrUnauthenticated; a directory out of reach is
	// ErrUnavailable.
	Authenticate(ctx context.Context, name, password string) (DirectoryUser, error)
	// Lookup returns name's entry as the directory has it now:
	// ErrNotFound once the user is gone from it.
	Lookup(ctx context.Context, name string) (DirectoryUser, error)
}

// DirectoryUser is a user's entry in a directory.
type DirectoryUser struct {
	Name   string   // the login name (uid)
	DN     string   // the entry's distinguished name
	Groups []string // the names (cn) of the groups the user is in, sorted
}

// FakeDirectory is a Directory in memory, with fault injection: after
// Fail(err), every call fails with err until Fail(nil).
type FakeDirectory struct {
	mu    sync.Mutex
	users map[string]fakeEntry
	fail  error
	calls int
}

type fakeEntry struct {
	password string
	groups   []string
}

var _ Directory = (*FakeDirectory)(nil)

// NewFakeDirectory returns an empty directory.
func NewFakeDirectory() *FakeDirectory { return &FakeDirectory{users: map[string]fakeEntry{}} }

// AddUser adds (or replaces) a user with a password and groups.
func (d *FakeDirectory) AddUser(_ context.Context, name, password string, groups ...string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	g := slices.Clone(groups)
	slices.Sort(g)
	d.users[name] = fakeEntry{password: password, groups: slices.Compact(g)}
	return nil
}

// RemoveUser deletes a user; a missing one is fine.
func (d *FakeDirectory) RemoveUser(_ context.Context, name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.users, name)
	return nil
}

// Fail makes every call fail with err (nil: work again).
func (d *FakeDirectory) Fail(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fail = err
}

// Calls counts the Authenticate and Lookup calls.
func (d *FakeDirectory) Calls() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls
}

// Authenticate checks name's password.
func (d *FakeDirectory) Authenticate(ctx context.Context, name, password string) (DirectoryUser, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	if d.fail != nil {
		return DirectoryUser{}, d.fail
	}
	e, ok := d.users[name]
	if !ok || password == "" || e.password != password {
		return DirectoryUser{}, virtplane.Errorf(virtplane.ErrUnauthenticated, "wrong user name or password")
	}
	return d.entry(name, e), nil
}

// Lookup returns name's entry.
func (d *FakeDirectory) Lookup(ctx context.Context, name string) (DirectoryUser, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	if d.fail != nil {
		return DirectoryUser{}, d.fail
	}
	e, ok := d.users[name]
	if !ok {
		return DirectoryUser{}, virtplane.Errorf(virtplane.ErrNotFound, "directory user %q", name)
	}
	return d.entry(name, e), nil
}

func (d *FakeDirectory) entry(name string, e fakeEntry) DirectoryUser {
	return DirectoryUser{Name: name, DN: "uid=" + name + ",fake", Groups: slices.Clone(e.groups)}
}
