package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/store"
)

// Subscription asks for events of some types over one channel.
type Subscription struct {
	ID      string   `json:"id"`
	Owner   string   `json:"owner" doc:"the user who receives the events"`
	Events  []string `json:"events" doc:"task.failed, script.result; admins also node.state and ha"`
	Channel string   `json:"channel" enum:"email,telegram,webhook"`
	// All is set on admins' subscriptions: they receive the events of
	// every user and of the infrastructure.
	All            bool      `json:"all" doc:"the events of every user and of the infrastructure (admins' subscriptions)"`
	Email          string    `json:"email,omitempty"`
	TelegramChatID string    `json:"telegram_chat_id,omitempty"`
	WebhookURL     string    `json:"webhook_url,omitempty"`
	Created        time.Time `json:"created"`
}

// subscriptionRecord is how a subscription is stored: with its webhook
// secret, which the API shows only once, when it is made.
type subscriptionRecord struct {
	Subscription
	WebhookSecret string `json:"webhook_secret,omitempty"`
}

func (r subscriptionRecord) destination() string {
	switch r.Channel {
	case ChannelEmail:
		return r.Email
	case ChannelTelegram:
		return r.TelegramChatID
	default:
		return r.WebhookURL
	}
}

// wants reports whether the subscription receives e.
func (r subscriptionRecord) wants(e Event) bool {
	typ, _, _ := strings.Cut(e.Type, ".")
	if e.Type != EventTest && !slices.Contains(r.Events, e.Type) && !(typ == EventHA && slices.Contains(r.Events, EventHA)) {
		return false
	}
	if e.Owner == "" {
		return r.All
	}
	return r.All || e.Owner == r.Owner
}

// SubscriptionBody is what a client sets on a subscription.
type SubscriptionBody struct {
	Events  []string `json:"events" minItems:"1" maxItems:"8" doc:"event types: task.failed, script.result, node.state (admins), ha (admins)"`
	Channel string   `json:"channel" enum:"email,telegram,webhook"`
	All     bool     `json:"all,omitempty" doc:"admins: receive the events of every user and of the infrastructure (node.state and ha need it)"`
	Email   string   `json:"email,omitempty" maxLength:"254" doc:"email channel: the address (default: the user's email)"`
	// TelegramChatID is the chat the bot writes to.
	TelegramChatID string `json:"telegram_chat_id,omitempty" maxLength:"64" doc:"telegram channel: the chat ID (a number, or @channelname)"`
	WebhookURL     string `json:"webhook_url,omitempty" maxLength:"2048" doc:"webhook channel: where the signed POSTs go"`
	WebhookSecret  string `json:"webhook_secret,omitempty" maxLength:"256" doc:"webhook channel: the HMAC-SHA256 key (at least 16 characters; default: one is generated and returned once)"`
}

// FieldError is an invalid field of a request body (Field is its JSON
// name); it wraps ErrInvalidArgument or the class at fault.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(name string, err error) error { return &FieldError{Field: name, Err: err} }

var chatID = regexp.MustCompile(`^(-?[0-9]{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31})$`)

func validEmail(field, a string) error {
	addr, err := mail.ParseAddress(a)
	if err != nil || addr.Address != a {
		return fieldErr(field, virtplane.Errorf(virtplane.ErrInvalidArgument, "%s %q: not an email address", field, a))
	}
	return nil
}

// CreateSubscription makes a subscription for owner; admin says whether
// owner is an admin. It returns the subscription and its webhook secret
// (shown once).
func (s *Service) CreateSubscription(ctx context.Context, owner string, admin bool, ownerEmail string, b SubscriptionBody) (Subscription, string, error) {
	if len(b.Events) == 0 {
		return Subscription{}, "", fieldErr("events", virtplane.Errorf(virtplane.ErrInvalidArgument, "events: at least one"))
	}
	for i, e := range b.Events {
		if !slices.Contains(eventTypes, e) {
			return Subscription{}, "", fieldErr("events["+itoa(i)+"]", virtplane.Errorf(virtplane.ErrInvalidArgument, "event %q: want one of %s", e, strings.Join(eventTypes, ", ")))
		}
		if slices.Index(b.Events, e) != i {
			return Subscription{}, "", fieldErr("events["+itoa(i)+"]", virtplane.Errorf(virtplane.ErrInvalidArgument, "event %q: listed twice", e))
		}
		if adminOnly(e) && !(admin && b.All) {
			return Subscription{}, "", fieldErr("events["+itoa(i)+"]", virtplane.Errorf(virtplane.ErrPermissionDenied, "event %q: infrastructure events are for admins' subscriptions with all set", e))
		}
	}
	if b.All && !admin {
		return Subscription{}, "", fieldErr("all", virtplane.Errorf(virtplane.ErrPermissionDenied, "all: only admins receive other users' events"))
	}
	if _, ok := s.cfg.Senders[b.Channel]; !ok {
		return Subscription{}, "", fieldErr("channel", virtplane.Errorf(virtplane.ErrNotImplemented, "channel %q is not configured on this daemon (configured: %s)", b.Channel, strings.Join(s.Channels(), ", ")))
	}
	r := subscriptionRecord{Subscription: Subscription{ID: store.NewID(), Owner: owner, Events: b.Events, Channel: b.Channel, All: b.All, Created: time.Now().UTC()}}
	other := func(name, v string) error {
		if v != "" {
			return fieldErr(name, virtplane.Errorf(virtplane.ErrInvalidArgument, "%s: not used by the %s channel", name, b.Channel))
		}
		return nil
	}
	var errs []error
	switch b.Channel {
	case ChannelEmail:
		r.Email = b.Email
		if r.Email == "" {
			r.Email = ownerEmail
		}
		if r.Email == "" {
			return Subscription{}, "", fieldErr("email", virtplane.Errorf(virtplane.ErrInvalidArgument, "email: the user has no email address (PUT /v1/users/{id}/email): give one"))
		}
		if err := validEmail("email", r.Email); err != nil {
			return Subscription{}, "", err
		}
		errs = append(errs, other("telegram_chat_id", b.TelegramChatID), other("webhook_url", b.WebhookURL), other("webhook_secret", b.WebhookSecret))
	case ChannelTelegram:
		if !chatID.MatchString(b.TelegramChatID) {
			return Subscription{}, "", fieldErr("telegram_chat_id", virtplane.Errorf(virtplane.ErrInvalidArgument, "telegram_chat_id %q: a chat ID (number) or @channelname", b.TelegramChatID))
		}
		r.TelegramChatID = b.TelegramChatID
		errs = append(errs, other("email", b.Email), other("webhook_url", b.WebhookURL), other("webhook_secret", b.WebhookSecret))
	case ChannelWebhook:
		if err := s.validWebhookURL(b.WebhookURL); err != nil {
			return Subscription{}, "", err
		}
		r.WebhookURL, r.WebhookSecret = b.WebhookURL, b.WebhookSecret
		switch {
		case r.WebhookSecret == "":
			k := make([]byte, 24)
			_, _ = rand.Read(k)
			r.WebhookSecret = "whsec_" + hex.EncodeToString(k)
		case len(r.WebhookSecret) < 16:
			return Subscription{}, "", fieldErr("webhook_secret", virtplane.Errorf(virtplane.ErrInvalidArgument, "webhook_secret: at least 16 characters"))
		}
		errs = append(errs, other("email", b.Email), other("telegram_chat_id", b.TelegramChatID))
	}
	for _, e := range errs {
		if e != nil {
			return Subscription{}, "", e
		}
	}
	data, err := json.Marshal(r)
	if err != nil {
		return Subscription{}, "", err
	}
	err = s.st.Update(ctx, func(tx store.Tx) error {
		return tx.CreateObject(ctx, &store.Object{Kind: KindSubscription, ID: r.ID, Name: r.ID, Owner: owner, Data: data})
	})
	if err != nil {
		return Subscription{}, "", err
	}
	secret := ""
	if r.Channel == ChannelWebhook {
		secret = r.WebhookSecret
	}
	return r.Subscription, secret, nil
}

func (s *Service) validWebhookURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Fragment != "" {
		return fieldErr("webhook_url", virtplane.Errorf(virtplane.ErrInvalidArgument, "webhook_url %q: an http(s) URL with a host, without credentials or fragment", redactURL(raw)))
	}
	if s.cfg.WebhookAllowed != nil {
		if err := s.cfg.WebhookAllowed(u.Hostname()); err != nil {
			return fieldErr("webhook_url", err)
		}
	}
	return nil
}

func (s *Service) subscriptionRecord(ctx context.Context, id string) (subscriptionRecord, error) {
	o, err := s.st.GetObject(ctx, KindSubscription, id)
	if err != nil {
		return subscriptionRecord{}, err
	}
	return decode[subscriptionRecord](o)
}

// Subscription returns one subscription (without its secret).
func (s *Service) Subscription(ctx context.Context, id string) (Subscription, error) {
	r, err := s.subscriptionRecord(ctx, id)
	return r.Subscription, err
}

// Subscriptions lists the subscriptions of owner (all when empty).
func (s *Service) Subscriptions(ctx context.Context, owner string) ([]Subscription, error) {
	rs, err := listAll[subscriptionRecord](ctx, s.st, KindSubscription, store.ListOptions{Owner: owner})
	out := make([]Subscription, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.Subscription)
	}
	return out, err
}

// DeleteSubscription removes a subscription; its pending deliveries fail
// at their next attempt.
func (s *Service) DeleteSubscription(ctx context.Context, id string) error {
	return s.st.Update(ctx, func(tx store.Tx) error { return tx.DeleteObject(ctx, KindSubscription, id, 0) })
}

// Test sends a test event to one subscription and returns its delivery.
func (s *Service) Test(ctx context.Context, id string) (Delivery, error) {
	r, err := s.subscriptionRecord(ctx, id)
	if err != nil {
		return Delivery{}, err
	}
	e := Event{Type: EventTest, Key: "test/" + store.NewID(), Owner: r.Owner, Subject: "virtplane test notification",
		Text: "This is a test of subscription " + r.ID + ".", Data: map[string]any{"subscription_id": r.ID}, At: s.now().UTC()}
	err = s.st.Update(ctx, func(tx store.Tx) error { return s.enqueueTx(ctx, tx, r, e) })
	if err != nil {
		return Delivery{}, err
	}
	s.Wake()
	return s.Delivery(ctx, deliveryID(r.ID, e.Key))
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}
