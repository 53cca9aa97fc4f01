package notify

import (
	"context"
	"time"

	"github.com/virtplane/virtplane"
)

// The event types a subscription may ask for.
const (
	// EventTaskFailed: a task of the subscriber (admins: any) failed.
	EventTaskFailed = "task.failed"
	// EventNodeState: a node changed state (admins only).
	EventNodeState = "node.state"
	// EventHA: failure detection, fencing and evacuation (admins only).
	EventHA = "ha"
	// EventScriptResult: a script run of the subscriber ended.
	EventScriptResult = "script.result"
	// EventTest is what POST /v1/notifications/subscriptions/{id}/test sends.
	EventTest = "test"
)

// EventTypes are the types a subscription may list.
var eventTypes = []string{EventTaskFailed, EventNodeState, EventHA, EventScriptResult}

// EventTypes returns the event types subscriptions may ask for.
func EventTypes() []string { return append([]string(nil), eventTypes...) }

// adminOnly reports whether events of type t concern the infrastructure:
// only admins may subscribe to them.
func adminOnly(t string) bool { return t == EventNodeState || t == EventHA }

// The channels.
const (
	ChannelEmail    = "email"
	ChannelTelegram = "telegram"
	ChannelWebhook  = "webhook"
)

// Event is something that happened that someone may want to hear of.
type Event struct {
	// Type is one of the Event* constants (an HA event: "ha" or "ha.ACTION").
	Type string
	// Key names the event uniquely ("task.failed/ID"): an event enqueued
	// twice under one key makes one delivery per subscription.
	Key string
	// Owner is the user the event concerns; empty for infrastructure,
	// which only admin subscriptions receive.
	Owner   string
	Subject string
	Text    string
	// Data travels in the webhook payload.
	Data map[string]any
	At   time.Time
}

// Mail is a mail to one address, outside subscriptions: the result of a
// script run for the owner of its VMs.
type Mail struct {
	// Key names the mail uniquely, as Event.Key.
	Key     string
	Owner   string
	To      string
	Subject string
	Body    string
	// Sensitive mails (connection details, generated passwords) lose their
	// body once delivered: the delivery log keeps only that they went.
	Sensitive bool
}

// Message is one delivery as a Sender sends it.
type Message struct {
	// ID is the delivery's ID: the same on every attempt, so receivers can
	// drop repeats.
	ID    string
	Event string
	// To is an email address, a Telegram chat ID or a webhook URL.
	To string
	// Secret is the webhook's HMAC key.
	Secret  string
	Subject string
	Text    string
	// Payload is the JSON document of the event (a webhook's body).
	Payload []byte
	At      time.Time
}

// Sender sends messages over one channel. Send returns nil once the
// receiver took the message; an error wrapping virtplane.ErrUnavailable,
// ErrTimeout or ErrCanceled is worth retrying later, any other (a refused
// address, a receiver that answers 4xx) is final. Errors never contain the
// message's secret or, for Telegram, the bot token.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// Retryable reports whether a Send error is worth another attempt.
func Retryable(err error) bool {
	switch virtplane.Class(err) {
	case virtplane.ErrUnavailable, virtplane.ErrTimeout, virtplane.ErrCanceled, virtplane.ErrResourceExhausted:
		return true
	}
	return false
}
