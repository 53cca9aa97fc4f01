package scriptrun

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"strings"
	"sync"

	xssh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/store"
)

// vmKeys gives each VM an SSH key of its own, derived from one seed kept in
// the store: nothing per VM needs storing or deleting, every daemon on the
// store derives the same key, and one VM's key opens no other VM. The seed
// is a store object no endpoint reads.
type vmKeys struct {
	st   store.Store
	mu   sync.Mutex
	seed []byte
}

const seedID = "vm-script-key-seed"

type seedData struct {
	Seed []byte `json:"seed"`
}

func (k *vmKeys) getSeed(ctx context.Context) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.seed != nil {
		return k.seed, nil
	}
	read := func() ([]byte, error) {
		o, err := k.st.GetObject(ctx, kindSecret, seedID)
		if err != nil {
			return nil, err
		}
		var d seedData
		if err := json.Unmarshal(o.Data, &d); err != nil || len(d.Seed) != 32 {
			return nil, virtplane.Errorf(virtplane.ErrUnavailable, "stored VM key seed is unreadable")
		}
		return d.Seed, nil
	}
	seed, err := read()
	if errors.Is(err, virtplane.ErrNotFound) {
		s := make([]byte, 32)
		if _, err := rand.Read(s); err != nil {
			return nil, virtplane.Errorf(virtplane.ErrUnavailable, "VM key seed: %v", err)
		}
		data, _ := json.Marshal(seedData{Seed: s})
		err = k.st.Update(ctx, func(tx store.Tx) error {
			return tx.CreateObject(ctx, &store.Object{Kind: kindSecret, ID: seedID, Name: seedID, Data: data})
		})
		if errors.Is(err, virtplane.ErrAlreadyExists) { // another daemon made it first
			seed, err = read()
		} else if err == nil {
			seed = s
		}
	}
	if err != nil {
		return nil, err
	}
	k.seed = seed
	return seed, nil
}

func (k *vmKeys) private(ctx context.Context, vmID string) (ed25519.PrivateKey, error) {
	seed, err := k.getSeed(ctx)
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, seed)
	mac.Write([]byte("virtplane vm script key\x00" + vmID))
	return ed25519.NewKeyFromSeed(mac.Sum(nil)), nil
}

// PublicKey returns the VM's key as an authorized_keys line.
func (k *vmKeys) PublicKey(ctx context.Context, vmID string) (string, error) {
	priv, err := k.private(ctx, vmID)
	if err != nil {
		return "", err
	}
	pub, err := xssh.NewPublicKey(priv.Public())
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(xssh.MarshalAuthorizedKey(pub))) + " virtplane-scripts", nil
}

// PrivateKeyPEM returns the VM's private key as OpenSSH PEM.
func (k *vmKeys) PrivateKeyPEM(ctx context.Context, vmID string) ([]byte, error) {
	priv, err := k.private(ctx, vmID)
	if err != nil {
		return nil, err
	}
	b, err := xssh.MarshalPrivateKey(priv, "virtplane-scripts")
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(b), nil
}

// hostKeyPin checks a VM's host key against the one pinned at its first
// run, and records the key it saw when none was pinned yet (trust on first
// use: the daemon cannot know the host key a guest generated for itself).
type hostKeyPin struct {
	pinned string // authorized_keys form, or ""
	mu     sync.Mutex
	seen   string
}

func (h *hostKeyPin) callback(_ string, _ net.Addr, key xssh.PublicKey) error {
	got := strings.TrimSpace(string(xssh.MarshalAuthorizedKey(key)))
	if h.pinned == "" {
		h.mu.Lock()
		h.seen = got
		h.mu.Unlock()
		return nil
	}
	if got == h.pinned {
		return nil
	}
	want, _, _, _, err := xssh.ParseAuthorizedKey([]byte(h.pinned))
	if err != nil {
		return virtplane.Errorf(virtplane.ErrUnavailable, "pinned host key is unreadable")
	}
	// The SSH runner reports this as a host key that does not match.
	return &knownhosts.KeyError{Want: []knownhosts.KnownKey{{Key: want, Filename: "the VM's pinned host key"}}}
}

func (h *hostKeyPin) observed() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen
}
