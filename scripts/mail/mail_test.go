package mail_test

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/scripts"
	"github.com/virtplane/virtplane/scripts/fake"
	"github.com/virtplane/virtplane/scripts/mail"
)

type received struct {
	from, to, data string
}

// backend is a real SMTP server (go-smtp) on loopback with PLAIN auth.
type backend struct {
	mu   sync.Mutex
	msgs []received
}

func (b *backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{b: b}, nil }

type session struct {
	b        *backend
	auth     bool
	from, to string
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "panel" || pass != "relay-pw" {
			return errors.New("bad credentials")
		}
		s.auth = true
		return nil
	}), nil
}
func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if !s.auth {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error { s.to = to; return nil }
func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.msgs = append(s.b.msgs, received{s.from, s.to, string(data)})
	return nil
}
func (s *session) Reset()        {}
func (s *session) Logout() error { return nil }

func startSMTP(t *testing.T) (*backend, int) {
	b := &backend{}
	srv := smtp.NewServer(b)
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return b, ln.Addr().(*net.TCPAddr).Port
}

func TestDeliverThroughExecutor(t *testing.T) {
	b, port := startSMTP(t)
	sender, err := mail.New(mail.Config{Host: "127.0.0.1", Port: port, From: "panel@example.test",
		Username: "panel", Password: "relay-pw", TLS: mail.NoTLS})
	require.NoError(t, err)
	ex, err := scripts.NewExecutor(scripts.ExecutorConfig{Runner: fake.New()}, scripts.WithDeliverer(sender))
	require.NoError(t, err)
	s := scripts.Script{Name: "db", Owner: "provider", Visibility: scripts.Everyone, Kind: scripts.Shell,
		Body:   "echo ready\nprintf '%s\\n' \"$PW\"\n",
		Params: []scripts.Param{{Name: "PW", Type: scripts.Password, Generate: 24}},
		Notice: "Your password: {{.Values.PW}}"}
	res, err := ex.Run(t.Context(), scripts.RunRequest{Script: s, User: "customer", Targets: []scripts.Target{{Name: "vm1"}},
		NotifyEmail: "customer@example.test"})
	require.NoError(t, err)
	require.True(t, res.Delivered, res.DeliveryError)
	b.mu.Lock()
	defer b.mu.Unlock()
	require.Len(t, b.msgs, 1)
	m := b.msgs[0]
	assert.Equal(t, "panel@example.test", m.from)
	assert.Equal(t, "customer@example.test", m.to)
	assert.Contains(t, m.data, "Subject: Script db succeeded")
	assert.Contains(t, m.data, "ready")
	i := strings.Index(m.data, "Your password: ")
	require.GreaterOrEqual(t, i, 0)
	pw := strings.TrimSpace(strings.SplitN(m.data[i+len("Your password: "):], "\n", 2)[0])
	assert.Len(t, pw, 24, "the notice carries the generated password to the user")
	assert.Equal(t, 1, strings.Count(m.data, pw), "only in the notice; the output is masked")
	assert.Contains(t, m.data, scripts.Mask)
	assert.NotContains(t, res.Targets[0].Stdout, pw)
}

func TestDeliveryErrors(t *testing.T) {
	_, port := startSMTP(t)
	d := scripts.Delivery{To: "u@example.test", Subject: "s", Body: "b"}
	bad, err := mail.New(mail.Config{Host: "127.0.0.1", Port: port, From: "p@example.test", Username: "panel", Password: "wrong", TLS: mail.NoTLS})
	require.NoError(t, err)
	err = bad.Deliver(t.Context(), d)
	require.ErrorIs(t, err, virtplane.ErrUnavailable)
	assert.NotContains(t, err.Error(), "wrong")

	tlsOnly, err := mail.New(mail.Config{Host: "127.0.0.1", Port: port, From: "p@example.test", Username: "panel", Password: "relay-pw"})
	require.NoError(t, err)
	require.ErrorIs(t, tlsOnly.Deliver(t.Context(), d), virtplane.ErrUnavailable, "mandatory TLS is refused by a server without STARTTLS")

	ok, err := mail.New(mail.Config{Host: "127.0.0.1", Port: port, From: "p@example.test", TLS: mail.NoTLS})
	require.NoError(t, err)
	require.ErrorIs(t, ok.Deliver(t.Context(), scripts.Delivery{To: "not an address"}), virtplane.ErrInvalidArgument)

	for _, cfg := range []mail.Config{{From: "p@example.test"}, {Host: "h", From: "nope"}, {Host: "h", From: "p@example.test", TLS: "maybe"}} {
		_, err := mail.New(cfg)
		require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	}
}

// refusingBackend answers every recipient with a permanent 550.
type refusingBackend struct{ backend }

func (b *refusingBackend) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &refusingSession{session{b: &b.backend, auth: true}}, nil
}

type refusingSession struct{ session }

func (s *refusingSession) Rcpt(string, *smtp.RcptOptions) error {
	return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox"}
}

// TestRefusedRecipientIsFinal: a relay's 5xx to the recipient is
// ErrInvalidArgument (trying again will not help), not ErrUnavailable.
func TestRefusedRecipientIsFinal(t *testing.T) {
	srv := smtp.NewServer(&refusingBackend{})
	srv.Domain, srv.AllowInsecureAuth = "localhost", true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	s, err := mail.New(mail.Config{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, From: "p@example.test", TLS: mail.NoTLS})
	require.NoError(t, err)
	err = s.Deliver(t.Context(), scripts.Delivery{To: "gone@example.test", Subject: "s", Body: "b"})
	require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	assert.Contains(t, err.Error(), "refused")
}
