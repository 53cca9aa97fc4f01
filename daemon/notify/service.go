package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/store"
)

// The store kinds of this package.
const (
	KindSubscription store.Kind = "notify.subscription"
	KindDelivery     store.Kind = "notify.delivery"
	kindCursor       store.Kind = "notify.cursor"
)

// Deliveries are kept under a parent that says whether they still wait, so
// the dispatcher lists only those.
const (
	parentPending = "pending"
	parentDone    = "done"
)

// Delivery states.
const (
	StatePending   = "pending"
	StateDelivered = "delivered"
	StateFailed    = "failed"
)

// Attempt is one try of a delivery.
type Attempt struct {
	At    time.Time `json:"at"`
	Error string    `json:"error,omitempty" doc:"why it failed; empty when the receiver took it"`
}

// Delivery is one message to one receiver, as stored and as the API shows
// it (the body stays in the store: see View).
type Delivery struct {
	ID             string    `json:"id"`
	SubscriptionID string    `json:"subscription_id,omitempty" doc:"empty for a script run's result mail"`
	Owner          string    `json:"owner"`
	Channel        string    `json:"channel" enum:"email,telegram,webhook"`
	To             string    `json:"to" doc:"email address, Telegram chat or webhook URL"`
	Event          string    `json:"event"`
	EventKey       string    `json:"event_key"`
	Subject        string    `json:"subject"`
	State          string    `json:"state" enum:"pending,delivered,failed"`
	Attempts       int       `json:"attempts"`
	NextAttempt    time.Time `json:"next_attempt,omitzero"`
	LastError      string    `json:"last_error,omitempty"`
	Log            []Attempt `json:"log"`
	Created        time.Time `json:"created"`
	Delivered      time.Time `json:"delivered,omitzero"`
	Sensitive      bool      `json:"sensitive,omitempty" doc:"the body holds secrets: it is dropped once delivered"`
	// What is sent: kept in the store, never shown.
	Text       string    `json:"-"`
	Payload    []byte    `json:"-"`
	At         time.Time `json:"-"`
	LeaseUntil time.Time `json:"-"`
}

// deliveryRecord is how a delivery is stored: with its body and lease.
type deliveryRecord struct {
	Delivery
	Text       string    `json:"text,omitempty"`
	Payload    []byte    `json:"payload,omitempty"`
	At         time.Time `json:"at"`
	LeaseUntil time.Time `json:"lease_until,omitzero"`
}

func (r deliveryRecord) delivery() Delivery {
	d := r.Delivery
	d.Text, d.Payload, d.At, d.LeaseUntil = r.Text, r.Payload, r.At, r.LeaseUntil
	return d
}

func recordOf(d Delivery) deliveryRecord {
	return deliveryRecord{Delivery: d, Text: d.Text, Payload: d.Payload, At: d.At, LeaseUntil: d.LeaseUntil}
}

// Config configures a Service.
type Config struct {
	Store store.Store
	// Senders by channel; a channel without one cannot be subscribed to.
	Senders map[string]Sender
	Logger  *slog.Logger
	// RetryMin and RetryMax bound the backoff between attempts (default
	// 2 s and 10 min): RetryMin, then doubling, never above RetryMax.
	RetryMin, RetryMax time.Duration
	// MaxAge is how long a delivery is retried before it fails (default 24 h).
	MaxAge time.Duration
	// Poll is how often the dispatcher looks for due deliveries (default 1 s).
	Poll time.Duration
	// SendTimeout bounds one attempt (default 30 s).
	SendTimeout time.Duration
	// Instance names this daemon in the leases of deliveries it sends.
	Instance string
	// WebhookAllowed, when set, decides which webhook URLs subscriptions
	// may name (an operator keeps them off internal networks).
	WebhookAllowed func(host string) error
}

// Service stores subscriptions and deliveries and sends them.
type Service struct {
	cfg  Config
	st   store.Store
	log  *slog.Logger
	wake chan struct{}
	now  func() time.Time

	mu      sync.Mutex
	sending map[string]bool // deliveries this process sends now
}

// New returns a Service; Run sends.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "notify: Store is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 2 * time.Second
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(10*time.Minute, cfg.RetryMin)
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 24 * time.Hour
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = 30 * time.Second
	}
	if cfg.Senders == nil {
		cfg.Senders = map[string]Sender{}
	}
	return &Service{cfg: cfg, st: cfg.Store, log: cfg.Logger, wake: make(chan struct{}, 1), now: time.Now, sending: map[string]bool{}}, nil
}

// Channels returns the channels this daemon can send on.
func (s *Service) Channels() []string {
	var out []string
	for c := range s.cfg.Senders {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// Mails reports whether this daemon sends mail (it has an email sender).
func (s *Service) Mails() bool {
	_, ok := s.cfg.Senders[ChannelEmail]
	return ok
}

// Wake makes the dispatcher look for due deliveries now.
func (s *Service) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// deliveryID is the ID of the delivery of event key to subscription (or
// address) dest: the same event enqueued twice finds its delivery there.
func deliveryID(dest, key string) string {
	sum := sha256.Sum256([]byte(dest + "\x00" + key))
	return hex.EncodeToString(sum[:12])
}

// EventTx records e in tx: one delivery for each subscription that asks
// for it. An event already recorded under the same key adds nothing.
func (s *Service) EventTx(ctx context.Context, tx store.Tx, e Event) error {
	if e.Key == "" || e.Type == "" {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "notify: event type and key are required")
	}
	if e.At.IsZero() {
		e.At = s.now().UTC()
	}
	subs, err := listAll[subscriptionRecord](ctx, tx, KindSubscription, store.ListOptions{})
	if err != nil {
		return err
	}
	for _, sub := range subs {
		if !sub.wants(e) {
			continue
		}
		if err := s.enqueueTx(ctx, tx, sub, e); err != nil {
			return err
		}
	}
	return nil
}

// Event records e in a transaction of its own.
func (s *Service) Event(ctx context.Context, e Event) error {
	err := s.st.Update(ctx, func(tx store.Tx) error { return s.EventTx(ctx, tx, e) })
	if err == nil {
		s.Wake()
	}
	return err
}

func payload(id string, e Event) []byte {
	b, _ := json.Marshal(map[string]any{"id": id, "event": e.Type, "key": e.Key, "at": e.At,
		"subject": e.Subject, "text": e.Text, "data": e.Data})
	return b
}

func (s *Service) enqueueTx(ctx context.Context, tx store.Tx, sub subscriptionRecord, e Event) error {
	id := deliveryID(sub.ID, e.Key)
	if _, err := tx.GetObject(ctx, KindDelivery, id); err == nil {
		return nil
	} else if !errors.Is(err, virtplane.ErrNotFound) {
		return err
	}
	now := s.now().UTC()
	d := Delivery{ID: id, SubscriptionID: sub.ID, Owner: sub.Owner, Channel: sub.Channel, To: sub.destination(),
		Event: e.Type, EventKey: e.Key, Subject: e.Subject, State: StatePending, NextAttempt: now, Log: []Attempt{}, Created: now,
		Text: e.Text, Payload: payload(id, e), At: e.At}
	return createDelivery(ctx, tx, d)
}

func createDelivery(ctx context.Context, tx store.Tx, d Delivery) error {
	data, err := json.Marshal(recordOf(d))
	if err != nil {
		return err
	}
	return tx.CreateObject(ctx, &store.Object{Kind: KindDelivery, ID: d.ID, Name: d.ID, Owner: d.Owner, Parent: parentPending, Data: data})
}

// MailTx records a mail to one address in tx (see Mail); the same key twice
// adds nothing. It returns the delivery's ID.
func (s *Service) MailTx(ctx context.Context, tx store.Tx, m Mail) (string, error) {
	if m.Key == "" || m.To == "" {
		return "", virtplane.Errorf(virtplane.ErrInvalidArgument, "notify: mail key and address are required")
	}
	if _, ok := s.cfg.Senders[ChannelEmail]; !ok {
		return "", virtplane.Errorf(virtplane.ErrNotImplemented, "mail: this daemon has no SMTP relay configured (smtp settings)")
	}
	if err := validEmail("to", m.To); err != nil {
		return "", err
	}
	id := deliveryID("mail:"+m.To, m.Key)
	if _, err := tx.GetObject(ctx, KindDelivery, id); err == nil {
		return id, nil
	} else if !errors.Is(err, virtplane.ErrNotFound) {
		return "", err
	}
	now := s.now().UTC()
	d := Delivery{ID: id, Owner: m.Owner, Channel: ChannelEmail, To: m.To, Event: "mail", EventKey: m.Key, Subject: m.Subject,
		State: StatePending, NextAttempt: now, Log: []Attempt{}, Created: now, Sensitive: m.Sensitive, Text: m.Body, At: now}
	return id, createDelivery(ctx, tx, d)
}

// Mail records a mail in a transaction of its own.
func (s *Service) Mail(ctx context.Context, m Mail) (string, error) {
	var id string
	err := s.st.Update(ctx, func(tx store.Tx) error {
		var err error
		id, err = s.MailTx(ctx, tx, m)
		return err
	})
	if err == nil {
		s.Wake()
	}
	return id, err
}

// Delivery returns one delivery.
func (s *Service) Delivery(ctx context.Context, id string) (Delivery, error) {
	o, err := s.st.GetObject(ctx, KindDelivery, id)
	if err != nil {
		return Delivery{}, err
	}
	r, err := decode[deliveryRecord](o)
	return r.delivery(), err
}

// Deliveries lists deliveries (of owner, when set), newest last by ID.
func (s *Service) Deliveries(ctx context.Context, owner, after string, limit int) ([]Delivery, string, error) {
	if limit <= 0 {
		limit = 100
	}
	objs, err := s.st.ListObjects(ctx, KindDelivery, store.ListOptions{Owner: owner, After: after, Limit: limit})
	if err != nil {
		return nil, "", err
	}
	out := make([]Delivery, 0, len(objs))
	for _, o := range objs {
		r, err := decode[deliveryRecord](o)
		if err != nil {
			return nil, "", err
		}
		out = append(out, r.delivery())
	}
	next := ""
	if len(objs) == limit {
		next = objs[len(objs)-1].ID
	}
	return out, next, nil
}

// Run sends due deliveries until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	tick := time.NewTicker(s.cfg.Poll)
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		if err := s.dispatch(ctx, &wg); err != nil && ctx.Err() == nil {
			s.log.Warn("notification dispatch", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-tick.C:
		}
	}
}

// dispatch claims the due deliveries and sends each in a goroutine.
func (s *Service) dispatch(ctx context.Context, wg *sync.WaitGroup) error {
	pending, err := listAll[deliveryRecord](ctx, s.st, KindDelivery, store.ListOptions{Parent: parentPending})
	if err != nil {
		return err
	}
	now := s.now()
	for _, r := range pending {
		if r.NextAttempt.After(now) || r.LeaseUntil.After(now) {
			continue
		}
		s.mu.Lock()
		busy := s.sending[r.ID]
		s.sending[r.ID] = true
		s.mu.Unlock()
		if busy {
			continue
		}
		d, ok, err := s.claim(ctx, r.ID)
		if err != nil || !ok {
			s.done(r.ID)
			if err != nil {
				return err
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.done(d.ID)
			s.send(ctx, d)
		}()
	}
	return nil
}

func (s *Service) done(id string) {
	s.mu.Lock()
	delete(s.sending, id)
	s.mu.Unlock()
}

// claim takes the lease of a due delivery; another daemon (or a later
// attempt here) sends it only when the lease ran out, which is how a
// delivery whose sender died is sent again.
func (s *Service) claim(ctx context.Context, id string) (Delivery, bool, error) {
	var d Delivery
	var ok bool
	err := s.st.Update(ctx, func(tx store.Tx) error {
		o, err := tx.GetObject(ctx, KindDelivery, id)
		if errors.Is(err, virtplane.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		r, err := decode[deliveryRecord](o)
		if err != nil {
			return err
		}
		now := s.now()
		if r.State != StatePending || r.NextAttempt.After(now) || r.LeaseUntil.After(now) {
			return nil
		}
		r.LeaseUntil = now.Add(2*s.cfg.SendTimeout + time.Second)
		if o.Data, err = json.Marshal(r); err != nil {
			return err
		}
		if err := tx.UpdateObject(ctx, &o); err != nil {
			return err
		}
		d, ok = r.delivery(), true
		return nil
	})
	if errors.Is(err, virtplane.ErrConflict) {
		return d, false, nil // another daemon claimed it
	}
	return d, ok, err
}

// backoff is the wait after the n-th failed attempt: RetryMin doubled n-1
// times, at most RetryMax, with up to a tenth more at random so that
// deliveries that failed together do not retry together.
func (s *Service) backoff(n int) time.Duration {
	d := s.cfg.RetryMin
	for i := 1; i < n && d < s.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, s.cfg.RetryMax)
	return d + time.Duration(rand.Int64N(int64(d)/10+1))
}

func (s *Service) send(ctx context.Context, d Delivery) {
	m := Message{ID: d.ID, Event: d.Event, To: d.To, Subject: d.Subject, Text: d.Text, Payload: d.Payload, At: d.At}
	var err error
	sender, ok := s.cfg.Senders[d.Channel]
	switch {
	case !ok:
		err = virtplane.Errorf(virtplane.ErrNotImplemented, "channel %s is not configured on this daemon", d.Channel)
	case d.SubscriptionID != "":
		var sub subscriptionRecord
		sub, err = s.subscriptionRecord(ctx, d.SubscriptionID)
		if errors.Is(err, virtplane.ErrNotFound) {
			err = virtplane.Errorf(virtplane.ErrNotFound, "subscription %s was deleted", d.SubscriptionID)
		}
		m.Secret = sub.WebhookSecret
	}
	if err == nil {
		sctx, cancel := context.WithTimeout(ctx, s.cfg.SendTimeout)
		err = sender.Send(sctx, m)
		cancel()
	}
	if ctx.Err() != nil {
		return // stopping: the lease runs out and the delivery is sent again
	}
	if rerr := s.record(context.WithoutCancel(ctx), d.ID, err); rerr != nil {
		s.log.Warn("recording a delivery attempt", "delivery", d.ID, "err", rerr)
	}
	if err != nil {
		s.log.Info("notification attempt failed", "delivery", d.ID, "channel", d.Channel, "err", err)
	}
}

// record stores the outcome of an attempt.
func (s *Service) record(ctx context.Context, id string, sendErr error) error {
	return s.st.Update(ctx, func(tx store.Tx) error {
		o, err := tx.GetObject(ctx, KindDelivery, id)
		if err != nil {
			return err
		}
		r, err := decode[deliveryRecord](o)
		if err != nil {
			return err
		}
		now := s.now().UTC()
		r.Attempts++
		r.LeaseUntil = time.Time{}
		a := Attempt{At: now}
		switch {
		case sendErr == nil:
			r.State, r.Delivered, r.NextAttempt, r.LastError = StateDelivered, now, time.Time{}, ""
			if r.Sensitive {
				r.Text, r.Payload = "", nil
			}
		case Retryable(sendErr) && now.Sub(r.Created) < s.cfg.MaxAge:
			a.Error = sendErr.Error()
			r.LastError, r.NextAttempt = a.Error, now.Add(s.backoff(r.Attempts))
		default:
			a.Error = sendErr.Error()
			if Retryable(sendErr) {
				a.Error = fmt.Sprintf("%s (retried for %s: giving up)", a.Error, now.Sub(r.Created).Round(time.Second))
			}
			r.State, r.LastError, r.NextAttempt = StateFailed, a.Error, time.Time{}
			if r.Sensitive {
				r.Text, r.Payload = "", nil
			}
		}
		r.Log = append(r.Log, a)
		if len(r.Log) > 50 {
			r.Log = append(r.Log[:1:1], r.Log[len(r.Log)-49:]...) // the first and the latest attempts
		}
		if r.State != StatePending {
			o.Parent = parentDone
		}
		if o.Data, err = json.Marshal(r); err != nil {
			return err
		}
		return tx.UpdateObject(ctx, &o)
	})
}

func decode[T any](o store.Object) (T, error) {
	var v T
	if err := json.Unmarshal(o.Data, &v); err != nil {
		return v, virtplane.Errorf(virtplane.ErrUnavailable, "stored %s %s is unreadable: %v", o.Kind, o.ID, err)
	}
	return v, nil
}

func listAll[T any](ctx context.Context, r store.Reader, kind store.Kind, opts store.ListOptions) ([]T, error) {
	opts.Limit = 1000
	var out []T
	for {
		objs, err := r.ListObjects(ctx, kind, opts)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			v, err := decode[T](o)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		if len(objs) < opts.Limit {
			return out, nil
		}
		opts.After = objs[len(objs)-1].ID
	}
}

// redactURL keeps a URL's scheme, host and path for errors and logs: its
// credentials and query (where tokens hide) are dropped.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	q := u.RawQuery != ""
	u.User, u.RawQuery, u.Fragment, u.RawFragment = nil, "", "", ""
	s := u.String()
	if q {
		s += "?…"
	}
	return s
}
