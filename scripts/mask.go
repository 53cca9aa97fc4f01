package scripts

import (
	"io"
	"slices"
	"strings"
	"sync"
)

// Masker replaces secrets with Mask in text. It is immutable and safe for
// concurrent use; NewMaskingWriter builds a streaming writer from it.
type Masker struct {
	secrets []string // longest first, no empties, no duplicates
	longest int
}

// NewMasker returns a Masker for the given secrets; empty strings are ignored.
func NewMasker(secrets ...string) *Masker {
	m := &Masker{}
	for _, s := range secrets {
		if s != "" && !slices.Contains(m.secrets, s) {
			m.secrets = append(m.secrets, s)
			m.longest = max(m.longest, len(s))
		}
	}
	// Longest first: where two secrets start at the same byte, the longer
	// one is masked whole.
	slices.SortFunc(m.secrets, func(a, b string) int { return len(b) - len(a) })
	return m
}

// String masks every occurrence of every secret in s.
func (m *Masker) String(s string) string {
	if m == nil || len(m.secrets) == 0 {
		return s
	}
	out, rest := m.mask(nil, []byte(s), true)
	return string(append(out, rest...))
}

// mask appends the masked form of buf to out. Unless final, it stops at the
// first byte where a secret may begin but buf ends too early to tell, and
// returns the undecided tail.
func (m *Masker) mask(out, buf []byte, final bool) (masked, pending []byte) {
	i, emitted := 0, 0
	for i < len(buf) {
		matched, partial := 0, false
		for _, s := range m.secrets {
			rest := buf[i:]
			if len(rest) >= len(s) {
				if string(rest[:len(s)]) == s {
					matched = len(s)
					break // longest first
				}
			} else if !final && strings.HasPrefix(s, string(rest)) {
				partial = true
			}
		}
		switch {
		case partial:
			// A longer secret may still complete here: wait for more.
			out = append(out, buf[emitted:i]...)
			return out, buf[i:]
		case matched > 0:
			out = append(out, buf[emitted:i]...)
			out = append(out, Mask...)
			i += matched
			emitted = i
		default:
			i++
		}
	}
	return append(out, buf[emitted:]...), nil
}

// MaskingWriter masks secrets in a stream written in chunks of any size: a
// secret split across two writes is still masked, because the bytes that
// could begin a secret are held back until the next write or Close.
type MaskingWriter struct {
	mu      sync.Mutex
	m       *Masker
	w       io.Writer
	pending []byte
	closed  bool
}

// NewMaskingWriter wraps w. Close must be called to flush the held-back tail.
func NewMaskingWriter(w io.Writer, m *Masker) *MaskingWriter {
	return &MaskingWriter{m: m, w: w}
}

// Write masks and forwards p; it reports len(p) written when the
// underlying writer accepts the masked bytes.
func (mw *MaskingWriter) Write(p []byte) (int, error) {
	mw.mu.Lock()
	defer mw.mu.Unlock()
	if mw.closed {
		return 0, io.ErrClosedPipe
	}
	if mw.m == nil || len(mw.m.secrets) == 0 {
		return mw.forward(p, len(p))
	}
	buf := append(mw.pending, p...)
	out, rest := mw.m.mask(nil, buf, false)
	mw.pending = append([]byte(nil), rest...)
	return mw.forward(out, len(p))
}

func (mw *MaskingWriter) forward(out []byte, n int) (int, error) {
	if len(out) == 0 {
		return n, nil
	}
	if _, err := mw.w.Write(out); err != nil {
		return 0, err
	}
	return n, nil
}

// Close flushes the held-back tail, masked. It does not close the
// underlying writer.
func (mw *MaskingWriter) Close() error {
	mw.mu.Lock()
	defer mw.mu.Unlock()
	if mw.closed {
		return nil
	}
	mw.closed = true
	if len(mw.pending) == 0 || mw.m == nil {
		return nil
	}
	out, _ := mw.m.mask(nil, mw.pending, true)
	mw.pending = nil
	_, err := mw.w.Write(out)
	return err
}
