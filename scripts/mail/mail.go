package mail

import (
	"context"
	"errors"
	"net/mail"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/scripts"
)

// TLS says how the connection to the SMTP server is protected.
type TLS string

const (
	// TLSMandatory requires STARTTLS (the default).
	TLSMandatory TLS = "mandatory"
	// TLSOpportunistic uses STARTTLS when the server offers it.
	TLSOpportunistic TLS = "opportunistic"
	// NoTLS sends in clear text: only for a relay on loopback.
	NoTLS TLS = "none"
)

// Config holds the SMTP relay and the sender address.
type Config struct {
	Host string
	Port int // default 587
	From string
	// Username and Password enable SMTP AUTH PLAIN when Username is set.
	Username string
	Password string
	TLS      TLS
	// Timeout bounds one delivery (default 30 s).
	Timeout time.Duration
}

// Sender mails script results; it implements scripts.Deliverer.
type Sender struct {
	cfg Config
}

var _ scripts.Deliverer = (*Sender)(nil)

// New checks cfg and returns a Sender.
func New(cfg Config) (*Sender, error) {
	if cfg.Host == "" {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "mail host: must not be empty")
	}
	if _, err := mail.ParseAddress(cfg.From); err != nil {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "mail from %q: %v", cfg.From, err)
	}
	if cfg.Port == 0 {
		cfg.Port = 587
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "mail port %d: out of range", cfg.Port)
	}
	switch cfg.TLS {
	case "":
		cfg.TLS = TLSMandatory
	case TLSMandatory, TLSOpportunistic, NoTLS:
	default:
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "mail tls %q: want mandatory, opportunistic or none", cfg.TLS)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	return &Sender{cfg: cfg}, nil
}

// Deliver sends d as a plain-text mail.
func (s *Sender) Deliver(ctx context.Context, d scripts.Delivery) error {
	if _, err := mail.ParseAddress(d.To); err != nil {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "mail to %q: %v", d.To, err)
	}
	msg := gomail.NewMsg()
	if err := msg.From(s.cfg.From); err != nil {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "mail from %q: %v", s.cfg.From, err)
	}
	if err := msg.To(d.To); err != nil {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "mail to %q: %v", d.To, err)
	}
	msg.Subject(d.Subject)
	msg.SetBodyString(gomail.TypeTextPlain, d.Body)

	opts := []gomail.Option{gomail.WithPort(s.cfg.Port), gomail.WithTimeout(s.cfg.Timeout)}
	switch s.cfg.TLS {
	case TLSMandatory:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case TLSOpportunistic:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	case NoTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if s.cfg.Username != "" {
		auth := gomail.SMTPAuthPlain
		if s.cfg.TLS != TLSMandatory {
			// go-mail refuses PLAIN without TLS unless told the channel is
			// trusted; the operator chose a relay without TLS.
			auth = gomail.SMTPAuthPlainNoEnc
		}
		opts = append(opts, gomail.WithSMTPAuth(auth), gomail.WithUsername(s.cfg.Username), gomail.WithPassword(s.cfg.Password))
	}
	client, err := gomail.NewClient(s.cfg.Host, opts...)
	if err != nil {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "mail client: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		if errors.Is(err, context.Canceled) {
			return virtplane.Errorf(virtplane.ErrCanceled, "mail to %s: canceled", d.To)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return virtplane.Errorf(virtplane.ErrTimeout, "mail to %s: timed out", d.To)
		}
		// The relay's 5xx answer to this message (an unknown mailbox, a
		// refused sender or content) will not change by trying again;
		// everything else may, a refused login included: the operator
		// fixes the relay's settings and the mail goes out.
		if refused(err) {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "mail to %s via %s: refused: %v", d.To, s.cfg.Host, err)
		}
		return virtplane.Errorf(virtplane.ErrUnavailable, "mail to %s via %s: %v", d.To, s.cfg.Host, err)
	}
	return nil
}

// refused reports whether the relay refused the message itself for good.
func refused(err error) bool {
	var se *gomail.SendError
	if !errors.As(err, &se) || se.ErrorCode() < 500 || se.ErrorCode() > 599 {
		return false
	}
	switch se.Reason {
	case gomail.ErrSMTPMailFrom, gomail.ErrSMTPRcptTo, gomail.ErrSMTPData, gomail.ErrSMTPDataClose:
		return true
	}
	return false
}
