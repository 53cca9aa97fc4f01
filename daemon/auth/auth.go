// Package auth proves who calls the daemon and decides what they may touch.
// Users sign in through an Authenticator (local accounts with argon2id
// password hashes; an LDAP/FreeIPA bind plugs in at the same seam) and get
// API tokens; a request carries a token and becomes a Principal. Admins may
// act on everything; users only on objects whose owner they are.
//
//	a := auth.New(st)
//	u, _ := a.CreateUser(ctx, "alice", "s3cret-pass", model.RoleUser)
//	secret, _, _ := a.IssueToken(ctx, u.ID, "billing", 0)
//	p, err := a.Verify(ctx, secret) // p.UserID == u.ID
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
)

// Principal is the caller of a request.
type Principal struct {
	UserID string
	Name   string
	Role   model.Role
}

// Admin reports whether the principal is an admin.
func (p Principal) Admin() bool { return p.Role == model.RoleAdmin }

// CanAccess reports whether the principal may see and change an object of owner.
func (p Principal) CanAccess(owner string) bool {
	return p.Admin() || (owner != "" && owner == p.UserID)
}

// Authenticator checks a user name and password and returns the account.
// Local is the built-in one; an LDAP bind implements the same interface.
type Authenticator interface {
	Authenticate(ctx context.Context, name, password string) (model.User, error)
}

// Service keeps users and tokens in the store.
type Service struct {
	st store.Store
	// Authenticators are asked in order; the first that knows the user decides.
	authenticators []Authenticator
	verified       *verifiedCache
}

// verifiedCache remembers tokens verified in the last VerifyCacheTTL, so
// that a busy API client costs no store reads per request. A token revoked
// or a user deleted through this daemon is forgotten at once; through
// another daemon sharing the store, within the TTL.
type verifiedCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]verifiedToken // by token ID
}

type verifiedToken struct {
	p       Principal
	expires time.Time // the token's own expiry (zero: none)
	until   time.Time // when to check the store again
}

// VerifyCacheTTL is how long a verified token is trusted without a store read.
const VerifyCacheTTL = 2 * time.Second

// maxVerified bounds the cache; past it, it starts over.
const maxVerified = 10000

func (c *verifiedCache) get(id string, now time.Time) (Principal, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[id]
	if !ok || now.After(v.until) || (!v.expires.IsZero() && now.After(v.expires)) {
		return Principal{}, false
	}
	return v.p, true
}

func (c *verifiedCache) put(id string, v verifiedToken) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxVerified {
		clear(c.m)
	}
	c.m[id] = v
}

// forget drops the cached tokens of a user ("" drops all).
func (c *verifiedCache) forget(userID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, v := range c.m {
		if userID == "" || v.p.UserID == userID {
			delete(c.m, id)
		}
	}
}

// Forget makes the next request of userID's tokens check the store: call
// it after disabling, deleting or changing the role of a user.
func (s *Service) Forget(userID string) { s.verified.forget(userID) }

// Option configures a Service.
type Option func(*Service)

// WithAuthenticator adds an authenticator asked after the local accounts
// (an LDAP directory).
func WithAuthenticator(a Authenticator) Option {
	return func(s *Service) { s.authenticators = append(s.authenticators, a) }
}

// New returns the service over st.
func New(st store.Store, opts ...Option) *Service {
	s := &Service{st: st, verified: &verifiedCache{ttl: VerifyCacheTTL, m: map[string]verifiedToken{}}}
	s.authenticators = []Authenticator{Local{st: st}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// argon2id parameters (RFC 9106 second recommendation, scaled for a
// control plane that signs in rarely and then uses tokens).
const (
	argonTime    = 2
	argonMemory  = 64 * 1024
	argonThreads = 2
	argonKeyLen  = 32
)

// HashPassword returns an encoded argon2id hash of password.
func HashPassword(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// CheckPassword reports whether password matches an encoded hash.
func CheckPassword(encoded, password string) bool {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var m uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false
	}
	// A stored hash is data: bound the work it may ask for (argon2 panics
	// below its minima, and a huge m or t would be a denial of service).
	if t < 1 || t > 16 || p < 1 || p > 16 || m < 8*uint32(p) || m > 1<<20 {
		return false
	}
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[4])
	want, err2 := enc.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(want) < 16 || len(want) > 64 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// Local authenticates the accounts stored in the daemon.
type Local struct{ st store.Store }

// Authenticate checks a local account's password.
func (l Local) Authenticate(ctx context.Context, name, password string) (model.User, error) {
	o, err := l.st.GetObjectByName(ctx, store.KindUser, "", name)
	if err != nil {
		if errors.Is(err, virtplane.ErrNotFound) {
			return model.User{}, virtplane.Errorf(virtplane.ErrUnauthenticated, "wrong user name or password")
		}
		return model.User{}, err
	}
	u, err := DecodeUser(o)
	if err != nil {
		return model.User{}, err
	}
	if u.Disabled || u.Source != "local" || !CheckPassword(u.PasswordHash, password) {
		return model.User{}, virtplane.Errorf(virtplane.ErrUnauthenticated, "wrong user name or password")
	}
	return u, nil
}

// SignIn checks a name and password with the authenticators.
func (s *Service) SignIn(ctx context.Context, name, password string) (model.User, error) {
	var lastErr error
	for _, a := range s.authenticators {
		u, err := a.Authenticate(ctx, name, password)
		if err == nil {
			return u, nil
		}
		lastErr = err
		if !errors.Is(err, virtplane.ErrUnauthenticated) && !errors.Is(err, virtplane.ErrNotImplemented) {
			return model.User{}, err
		}
	}
	if lastErr == nil || errors.Is(lastErr, virtplane.ErrNotImplemented) {
		lastErr = virtplane.Errorf(virtplane.ErrUnauthenticated, "wrong user name or password")
	}
	return model.User{}, lastErr
}

// CreateUser adds a local account.
func (s *Service) CreateUser(ctx context.Context, name, password string, role model.Role) (model.User, error) {
	if err := model.ValidName("name", name); err != nil {
		return model.User{}, err
	}
	if len(password) < 8 {
		return model.User{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "password: at least 8 characters")
	}
	if role != model.RoleAdmin && role != model.RoleUser {
		return model.User{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "role %q: admin or user", role)
	}
	hash, err := HashPassword(password)
	if err != nil {
		return model.User{}, err
	}
	u := model.User{ID: store.NewID(), Name: name, Role: role, Source: "local", PasswordHash: hash, Created: time.Now().UTC()}
	data, err := json.Marshal(userRecord{User: u, Hash: hash})
	if err != nil {
		return model.User{}, err
	}
	err = s.st.Update(ctx, func(tx store.Tx) error {
		return tx.CreateObject(ctx, &store.Object{Kind: store.KindUser, ID: u.ID, Name: name, Owner: u.ID, Data: data})
	})
	if errors.Is(err, virtplane.ErrAlreadyExists) {
		return model.User{}, virtplane.Errorf(virtplane.ErrAlreadyExists, "user %q exists", name)
	}
	return u, err
}

// userRecord is how a user is stored: the hash is kept out of the API type's JSON.
type userRecord struct {
	model.User
	Hash string `json:"password_hash"`
}

// DecodeUser reads a stored user.
func DecodeUser(o store.Object) (model.User, error) {
	var r userRecord
	if err := json.Unmarshal(o.Data, &r); err != nil {
		return model.User{}, fmt.Errorf("user %s: %w", o.ID, err)
	}
	r.User.PasswordHash = r.Hash
	return r.User, nil
}

// tokenPrefix marks virtplane tokens so secret scanners can find them.
const tokenPrefix = "vpt_"

func tokenID(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// IssueToken creates a token for a user; ttl 0 means it does not expire.
// The secret is returned once; only its hash is stored.
func (s *Service) IssueToken(ctx context.Context, userID, name string, ttl time.Duration) (string, model.Token, error) {
	if name == "" {
		return "", model.Token{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "token name is empty")
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", model.Token{}, err
	}
	secret := tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	t := model.Token{ID: store.NewID(), UserID: userID, Name: name, Created: time.Now().UTC()}
	if ttl > 0 {
		t.Expires = t.Created.Add(ttl)
	}
	data, err := json.Marshal(t)
	if err != nil {
		return "", model.Token{}, err
	}
	// The store ID is the hash (looked up on every request); the public ID
	// names the token in the API. The object name must be unique per
	// parent, so the public ID is the name and the user the parent.
	err = s.st.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.GetObject(ctx, store.KindUser, userID); err != nil {
			return err
		}
		return tx.CreateObject(ctx, &store.Object{Kind: store.KindToken, ID: tokenID(secret), Name: t.ID, Owner: userID, Parent: userID, Data: data})
	})
	return secret, t, err
}

// Verify turns a token secret into the principal it belongs to.
func (s *Service) Verify(ctx context.Context, secret string) (Principal, error) {
	if !strings.HasPrefix(secret, tokenPrefix) {
		return Principal{}, virtplane.Errorf(virtplane.ErrUnauthenticated, "malformed token")
	}
	id := tokenID(secret)
	now := time.Now()
	if p, ok := s.verified.get(id, now); ok {
		return p, nil
	}
	o, err := s.st.GetObject(ctx, store.KindToken, id)
	if err != nil {
		if errors.Is(err, virtplane.ErrNotFound) {
			return Principal{}, virtplane.Errorf(virtplane.ErrUnauthenticated, "unknown token")
		}
		return Principal{}, err
	}
	var t model.Token
	if err := json.Unmarshal(o.Data, &t); err != nil {
		return Principal{}, err
	}
	if !t.Expires.IsZero() && time.Now().After(t.Expires) {
		return Principal{}, virtplane.Errorf(virtplane.ErrUnauthenticated, "token expired")
	}
	uo, err := s.st.GetObject(ctx, store.KindUser, t.UserID)
	if err != nil {
		return Principal{}, virtplane.Errorf(virtplane.ErrUnauthenticated, "token of a deleted user")
	}
	u, err := DecodeUser(uo)
	if err != nil {
		return Principal{}, err
	}
	if u.Disabled {
		return Principal{}, virtplane.Errorf(virtplane.ErrUnauthenticated, "user %q is disabled", u.Name)
	}
	p := Principal{UserID: u.ID, Name: u.Name, Role: u.Role}
	s.verified.put(id, verifiedToken{p: p, expires: t.Expires, until: now.Add(s.verified.ttl)})
	return p, nil
}

// Tokens lists a user's tokens.
func (s *Service) Tokens(ctx context.Context, userID string) ([]model.Token, error) {
	objs, err := s.st.ListObjects(ctx, store.KindToken, store.ListOptions{Parent: userID})
	if err != nil {
		return nil, err
	}
	out := make([]model.Token, 0, len(objs))
	for _, o := range objs {
		var t model.Token
		if err := json.Unmarshal(o.Data, &t); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// RevokeToken deletes the token with public ID id of user userID.
func (s *Service) RevokeToken(ctx context.Context, userID, id string) error {
	defer s.verified.forget(userID)
	return s.st.Update(ctx, func(tx store.Tx) error {
		o, err := tx.GetObjectByName(ctx, store.KindToken, userID, id)
		if err != nil {
			return virtplane.Errorf(virtplane.ErrNotFound, "token %q", id)
		}
		return tx.DeleteObject(ctx, store.KindToken, o.ID, 0)
	})
}
