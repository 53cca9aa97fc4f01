// Package smtptest is a real SMTP server (github.com/emersion/go-smtp) on
// loopback for tests: it keeps every message it accepts, decoded (subject
// and quoted-printable or base64 body), and can be taken down and brought
// back on the same port, or made to refuse recipients, to test retries.
//
//	srv := smtptest.Start(t)
//	sender, _ := mail.New(mail.Config{Host: "127.0.0.1", Port: srv.Port(), From: "panel@example.test", TLS: mail.NoTLS})
//	...
//	msgs := srv.Wait(t, 1, 10*time.Second)
package smtptest

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Message is one accepted mail.
type Message struct {
	From, To string
	Subject  string
	// Body is the decoded text body.
	Body string
	// Raw is the message as received.
	Raw string
}

// Server is the SMTP server.
type Server struct {
	mu      sync.Mutex
	addr    string
	srv     *smtp.Server
	ln      net.Listener
	msgs    []Message
	refuse  int
	arrived chan struct{}
}

// Start starts a server on 127.0.0.1 (no TLS, no auth) for the test.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{arrived: make(chan struct{}, 1)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: listen: %v", err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	t.Cleanup(func() { s.SetDown(t, true) })
	return s
}

func (s *Server) serve(ln net.Listener) {
	srv := smtp.NewServer(backend{s})
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	s.srv, s.ln = srv, ln
	go func() { _ = srv.Serve(ln) }()
}

// Addr is host:port of the server.
func (s *Server) Addr() string { return s.addr }

// Port is the server's port.
func (s *Server) Port() int { return s.port() }

func (s *Server) port() int {
	_, p, _ := net.SplitHostPort(s.addr)
	n := 0
	for _, c := range p {
		n = n*10 + int(c-'0')
	}
	return n
}

// SetDown stops the server (connections are refused) or starts it again on
// the same port.
func (s *Server) SetDown(t testing.TB, down bool) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if down {
		if s.srv != nil {
			// The listener is closed here too: Close may come before Serve
			// has taken it.
			_ = s.ln.Close()
			_ = s.srv.Close()
			s.srv = nil
		}
		return
	}
	if s.srv != nil {
		return
	}
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if ln, err = net.Listen("tcp", s.addr); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("smtptest: listen again on %s: %v", s.addr, err)
	}
	s.serve(ln)
}

// Refuse makes the server refuse the next n recipients with a permanent 550.
func (s *Server) Refuse(n int) {
	s.mu.Lock()
	s.refuse += n
	s.mu.Unlock()
}

// Messages returns the messages accepted so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Wait waits until at least n messages arrived and returns them; it fails
// the test after timeout.
func (s *Server) Wait(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if m := s.Messages(); len(m) >= n {
			return m
		}
		select {
		case <-s.arrived:
		case <-deadline:
			t.Fatalf("smtptest: %d message(s) arrived within %s, want %d", len(s.Messages()), timeout, n)
		}
	}
}

type backend struct{ s *Server }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{s: b.s}, nil }

type session struct {
	s        *Server
	from, to string
}

func (x *session) Mail(from string, _ *smtp.MailOptions) error { x.from = from; return nil }

func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	if x.s.refuse > 0 {
		x.s.refuse--
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox"}
	}
	x.to = to
	return nil
}

func (x *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := Message{From: x.from, To: x.to, Raw: string(raw)}
	if msg, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
		m.Subject, _ = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
		body, _ := io.ReadAll(msg.Body)
		m.Body = decodeBody(msg.Header.Get("Content-Transfer-Encoding"), body)
	}
	x.s.mu.Lock()
	x.s.msgs = append(x.s.msgs, m)
	x.s.mu.Unlock()
	select {
	case x.s.arrived <- struct{}{}:
	default:
	}
	return nil
}

func decodeBody(enc string, body []byte) string {
	var out []byte
	var err error
	switch strings.ToLower(strings.TrimSpace(enc)) {
	case "quoted-printable":
		out, err = io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
	case "base64":
		out, err = base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(body)), ""))
	default:
		out = body
	}
	if err != nil {
		out = body
	}
	return strings.ReplaceAll(string(out), "\r\n", "\n")
}

func (x *session) Reset()        {}
func (x *session) Logout() error { return nil }
