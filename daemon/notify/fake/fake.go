// Package fake is an in-memory notify.Sender for tests: it keeps what it
// was sent, can be taken down (every Send is ErrUnavailable until it comes
// back) and can refuse the next messages for good. It passes notifytest.Run.
package fake

import (
	"context"
	"sync"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/notify"
)

// Sender is the fake.
type Sender struct {
	mu     sync.Mutex
	got    []notify.Message
	calls  int
	down   bool
	refuse int
	faults []error
}

var _ notify.Sender = (*Sender)(nil)

// New returns a fake that takes every message.
func New() *Sender { return &Sender{} }

// SetDown makes the receiver unreachable (true) or back (false).
func (s *Sender) SetDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

// Refuse makes the next n messages be refused for good.
func (s *Sender) Refuse(n int) {
	s.mu.Lock()
	s.refuse += n
	s.mu.Unlock()
}

// Fail makes the next Sends return errs, one each, in order.
func (s *Sender) Fail(errs ...error) {
	s.mu.Lock()
	s.faults = append(s.faults, errs...)
	s.mu.Unlock()
}

// Messages returns what the receiver took, in order.
func (s *Sender) Messages() []notify.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]notify.Message(nil), s.got...)
}

// Calls counts the Sends, taken or not.
func (s *Sender) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// Send implements notify.Sender.
func (s *Sender) Send(ctx context.Context, m notify.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	switch {
	case ctx.Err() != nil:
		return virtplane.Errorf(virtplane.ErrCanceled, "fake sender: canceled")
	case len(s.faults) > 0:
		err := s.faults[0]
		s.faults = s.faults[1:]
		return err
	case s.down:
		return virtplane.Errorf(virtplane.ErrUnavailable, "fake sender: receiver down")
	case s.refuse > 0:
		s.refuse--
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "fake sender: %s refused the message", m.To)
	}
	s.got = append(s.got, m)
	return nil
}
