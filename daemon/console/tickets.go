package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/store"
)

// DefaultTTL is how long a console ticket may wait to be used: long enough
// for a browser to load the console page and open its WebSocket, short
// enough that a ticket that leaked (a log, a screenshot) is useless soon
// after (Proxmox: 40 s).
const DefaultTTL = 30 * time.Second

// Ticket is what a ticket grants: the console of one VM, to one user.
type Ticket struct {
	VMID    string    `json:"vm_id"`
	UserID  string    `json:"user_id"`
	Expires time.Time `json:"expires"`
}

// Tickets issues and redeems console tickets. They are kept in the store
// (by the SHA-256 of the secret, never the secret), so that any daemon
// sharing it redeems a ticket another issued, and a ticket is used once
// across all of them: the redeem deletes it in the transaction that reads it.
type Tickets struct {
	st  store.Store
	ttl time.Duration
	now func() time.Time
}

// NewTickets returns tickets that expire after ttl (DefaultTTL when 0).
func NewTickets(st store.Store, ttl time.Duration) *Tickets {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Tickets{st: st, ttl: ttl, now: time.Now}
}

func key(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// Issue makes a ticket for the console of vmID, for userID, and removes
// the user's tickets that expired.
func (t *Tickets) Issue(ctx context.Context, vmID, userID string) (string, time.Time, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", time.Time{}, err
	}
	secret := "vptc_" + base64.RawURLEncoding.EncodeToString(b)
	now := t.now()
	tk := Ticket{VMID: vmID, UserID: userID, Expires: now.Add(t.ttl).UTC()}
	data, err := json.Marshal(tk)
	if err != nil {
		return "", time.Time{}, err
	}
	id := key(secret)
	err = t.st.Update(ctx, func(tx store.Tx) error {
		old, err := tx.ListObjects(ctx, store.KindConsoleTicket, store.ListOptions{Owner: userID, Limit: 1000})
		if err != nil {
			return err
		}
		for _, o := range old {
			var ot Ticket
			if json.Unmarshal(o.Data, &ot) != nil || now.After(ot.Expires) {
				if err := tx.DeleteObject(ctx, store.KindConsoleTicket, o.ID, 0); err != nil {
					return err
				}
			}
		}
		return tx.CreateObject(ctx, &store.Object{Kind: store.KindConsoleTicket, ID: id, Name: id, Owner: userID, Data: data})
	})
	if err != nil {
		return "", time.Time{}, err
	}
	return secret, tk.Expires, nil
}

// Redeem uses up a ticket for the console of vmID. An unknown, used or
// expired ticket, or one for another VM, is ErrPermissionDenied (the
// reason is not told apart: a guesser learns nothing); an expired or
// misdirected ticket is used up all the same.
func (t *Tickets) Redeem(ctx context.Context, secret, vmID string) (Ticket, error) {
	var tk Ticket
	denied := virtplane.Errorf(virtplane.ErrPermissionDenied, "console ticket: unknown, used, expired or for another VM")
	err := t.st.Update(ctx, func(tx store.Tx) error {
		o, err := tx.GetObject(ctx, store.KindConsoleTicket, key(secret))
		if err != nil {
			return denied
		}
		if err := tx.DeleteObject(ctx, store.KindConsoleTicket, o.ID, o.Version); err != nil {
			return denied // redeemed at the same moment elsewhere
		}
		if err := json.Unmarshal(o.Data, &tk); err != nil {
			return denied
		}
		return nil
	})
	if err != nil && !errors.Is(err, virtplane.ErrPermissionDenied) {
		return Ticket{}, err
	}
	if err != nil || t.now().After(tk.Expires) || tk.VMID != vmID {
		return Ticket{}, denied
	}
	return tk, nil
}
