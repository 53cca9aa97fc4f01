package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/scripts"
	"github.com/virtplane/virtplane/scripts/mail"
)

// EmailSender sends messages as plain-text mail through an SMTP relay
// (scripts/mail over go-mail).
type EmailSender struct {
	relay *mail.Sender
}

var _ Sender = (*EmailSender)(nil)

// NewEmailSender checks the relay's settings.
func NewEmailSender(cfg mail.Config) (*EmailSender, error) {
	m, err := mail.New(cfg)
	if err != nil {
		return nil, err
	}
	return &EmailSender{relay: m}, nil
}

// Send implements Sender: subject and text as a plain-text mail.
func (e *EmailSender) Send(ctx context.Context, m Message) error {
	err := e.relay.Deliver(ctx, scripts.Delivery{To: m.To, Subject: m.Subject, Body: m.Text})
	if err != nil && ctx.Err() != nil {
		return ctxErr(ctx, "mail to "+m.To)
	}
	return err
}

// TelegramSender sends messages through a Telegram bot (Bot API
// sendMessage). API is the Bot API endpoint (https://api.telegram.org by
// default; tests point it at a local server).
type TelegramSender struct {
	api   string
	token string
	http  *http.Client
}

var _ Sender = (*TelegramSender)(nil)

// NewTelegramSender checks the endpoint and the token.
func NewTelegramSender(api, token string, hc *http.Client) (*TelegramSender, error) {
	if api == "" {
		api = "https://api.telegram.org"
	}
	u, err := url.Parse(api)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "telegram api %q: an http(s) URL", api)
	}
	if token == "" || strings.ContainsAny(token, "/?# \t\n") {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "telegram bot token: must be set, without / ? # or spaces")
	}
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &TelegramSender{api: strings.TrimSuffix(api, "/"), token: token, http: hc}, nil
}

// Send implements Sender: subject and text as one message.
func (t *TelegramSender) Send(ctx context.Context, m Message) error {
	text := m.Subject
	if m.Text != "" {
		text += "\n\n" + m.Text
	}
	if len(text) > 4096 {
		text = text[:4093] + "..."
	}
	body, _ := json.Marshal(map[string]any{"chat_id": m.To, "text": text, "disable_web_page_preview": true})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.api+"/bot"+t.token+"/sendMessage", bytes.NewReader(body))
	if err != nil {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "telegram: request: %v", t.redact(err))
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := t.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctxErr(ctx, "telegram")
		}
		// The error names the URL, and the URL holds the token.
		return virtplane.Errorf(virtplane.ErrUnavailable, "telegram: %v", t.redact(err))
	}
	defer resp.Body.Close()
	var answer struct {
		OK          bool   `json:"ok"`
		Description string `json:"description"`
		Parameters  struct {
			RetryAfter int `json:"retry_after"`
		} `json:"parameters"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&answer)
	if resp.StatusCode == http.StatusOK && answer.OK {
		return nil
	}
	why := strings.TrimSpace(t.redactString(answer.Description))
	if why == "" {
		why = resp.Status
	}
	if retryableStatus(resp.StatusCode) {
		return virtplane.Errorf(virtplane.ErrUnavailable, "telegram: %s (retry after %ds)", why, answer.Parameters.RetryAfter)
	}
	return virtplane.Errorf(virtplane.ErrInvalidArgument, "telegram refused the message to chat %s: %s", m.To, why)
}

func (t *TelegramSender) redact(err error) string { return t.redactString(err.Error()) }

func (t *TelegramSender) redactString(s string) string {
	return strings.ReplaceAll(s, t.token, scripts.Mask)
}

// WebhookSender POSTs each message's payload as JSON, signed with the
// subscription's secret:
//
//	X-Virtplane-Delivery:  the delivery ID (the same on every retry)
//	X-Virtplane-Event:     the event type
//	X-Virtplane-Timestamp: Unix seconds of this attempt
//	X-Virtplane-Signature: sha256=HEX(HMAC-SHA256(secret, TIMESTAMP + "." + BODY))
//
// A receiver checks the signature (VerifyWebhook), refuses old timestamps,
// and drops repeated delivery IDs. 2xx is taken; 408, 425, 429 and 5xx are
// retried; any other answer is final.
type WebhookSender struct {
	http *http.Client
	now  func() time.Time
}

var _ Sender = (*WebhookSender)(nil)

// NewWebhookSender returns a sender using hc (default: 30 s timeout, no
// redirects followed: a redirect is the receiver's answer).
func NewWebhookSender(hc *http.Client) *WebhookSender {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return &WebhookSender{http: hc, now: time.Now}
}

// Sign returns the signature header value for body at timestamp ts.
func Sign(secret string, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "%d.", ts)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// VerifyWebhook checks a received webhook: the signature over the
// timestamp and body, and a timestamp within maxSkew of now.
func VerifyWebhook(secret string, h http.Header, body []byte, now time.Time, maxSkew time.Duration) error {
	ts, err := strconv.ParseInt(h.Get("X-Virtplane-Timestamp"), 10, 64)
	if err != nil {
		return virtplane.Errorf(virtplane.ErrUnauthenticated, "webhook: no timestamp")
	}
	if d := now.Sub(time.Unix(ts, 0)); d > maxSkew || d < -maxSkew {
		return virtplane.Errorf(virtplane.ErrUnauthenticated, "webhook: timestamp %d is too far from now", ts)
	}
	if !hmac.Equal([]byte(Sign(secret, ts, body)), []byte(h.Get("X-Virtplane-Signature"))) {
		return virtplane.Errorf(virtplane.ErrUnauthenticated, "webhook: bad signature")
	}
	return nil
}

// Send implements Sender.
func (w *WebhookSender) Send(ctx context.Context, m Message) error {
	if m.Secret == "" {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "webhook %s: no secret to sign with", redactURL(m.To))
	}
	body := m.Payload
	if len(body) == 0 {
		body, _ = json.Marshal(map[string]any{"id": m.ID, "event": m.Event, "subject": m.Subject, "text": m.Text, "at": m.At})
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.To, bytes.NewReader(body))
	if err != nil {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "webhook %s: %v", redactURL(m.To), err)
	}
	ts := w.now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "virtplane-webhook/1")
	req.Header.Set("X-Virtplane-Delivery", m.ID)
	req.Header.Set("X-Virtplane-Event", m.Event)
	req.Header.Set("X-Virtplane-Timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("X-Virtplane-Signature", Sign(m.Secret, ts, body))
	resp, err := w.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctxErr(ctx, "webhook "+redactURL(m.To))
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return virtplane.Errorf(virtplane.ErrUnavailable, "webhook %s: %v", redactURL(m.To), err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case retryableStatus(resp.StatusCode):
		return virtplane.Errorf(virtplane.ErrUnavailable, "webhook %s answered %s", redactURL(m.To), resp.Status)
	default:
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "webhook %s refused the delivery: %s", redactURL(m.To), resp.Status)
	}
}

func retryableStatus(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooEarly || code == http.StatusTooManyRequests || code >= 500
}

func ctxErr(ctx context.Context, what string) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return virtplane.Errorf(virtplane.ErrTimeout, "%s: timed out", what)
	}
	return virtplane.Errorf(virtplane.ErrCanceled, "%s: canceled", what)
}
