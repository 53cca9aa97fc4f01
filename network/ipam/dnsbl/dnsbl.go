package dnsbl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/virtplane/virtplane"
)

// Resolver looks names up in DNS. *net.Resolver satisfies it. A name that
// does not exist must yield a *net.DNSError with IsNotFound set.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// Config holds the required inputs of a Checker.
type Config struct {
	// Zones are the blocklist zones ("zen.spamhaus.org", "bl.example").
	Zones []string
	// Resolver does the lookups.
	Resolver Resolver
}

// Option configures a Checker.
type Option func(*Checker)

// WithoutReasons skips the TXT lookup that fetches a listing's reason.
func WithoutReasons() Option { return func(c *Checker) { c.reasons = false } }

// Checker checks addresses against a set of blocklist zones.
type Checker struct {
	zones    []string
	resolver Resolver
	reasons  bool
}

// Zones returns the zones the checker asks, normalized, in order.
func (c *Checker) Zones() []string { return slices.Clone(c.zones) }

// New validates the zones and returns a Checker.
func New(cfg Config, opts ...Option) (*Checker, error) {
	if cfg.Resolver == nil {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "dnsbl config: Resolver is nil")
	}
	if len(cfg.Zones) == 0 {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "dnsbl config: no zones")
	}
	c := &Checker{resolver: cfg.Resolver, reasons: true}
	for _, z := range cfg.Zones {
		nz, err := normalizeZone(z)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(c.zones, nz) {
			c.zones = append(c.zones, nz)
		}
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// normalizeZone lower-cases a zone, drops a trailing dot and checks that it
// is a DNS name.
func normalizeZone(z string) (string, error) {
	nz := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(z), "."))
	if nz == "" || len(nz) > 200 {
		return "", virtplane.Errorf(virtplane.ErrInvalidArgument, "dnsbl zone %q is empty or too long", z)
	}
	for _, label := range strings.Split(nz, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", virtplane.Errorf(virtplane.ErrInvalidArgument, "dnsbl zone %q has an invalid label %q", z, label)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return "", virtplane.Errorf(virtplane.ErrInvalidArgument, "dnsbl zone %q has an invalid character %q", z, r)
			}
		}
	}
	return nz, nil
}

// QueryName returns the fully qualified name that asks zone about addr:
// reversed octets for IPv4, reversed nibbles for IPv6, with a trailing dot.
//
// An IPv4-mapped IPv6 address (::ffff:127.0.0.2, the RFC 5782 IPv6 test
// point) is queried in nibble form, as IPv6 lists expect.
func QueryName(addr netip.Addr, zone string) string {
	var b strings.Builder
	if addr.Is4() {
		v := addr.As4()
		fmt.Fprintf(&b, "%d.%d.%d.%d.", v[3], v[2], v[1], v[0])
	} else {
		const hex = "0123456789abcdef"
		v := addr.As16()
		for i := 15; i >= 0; i-- {
			b.WriteByte(hex[v[i]&0xf])
			b.WriteByte('.')
			b.WriteByte(hex[v[i]>>4])
			b.WriteByte('.')
		}
	}
	b.WriteString(strings.TrimSuffix(zone, "."))
	b.WriteByte('.')
	return b.String()
}

// Listing is one zone's verdict that an address is listed.
type Listing struct {
	Zone string
	// Codes are the answers (127.0.0.x), which lists use as categories.
	Codes []netip.Addr
	// Reason is the TXT record of the listing, if the zone publishes one.
	Reason string
}

// Result is the outcome of a Check.
type Result struct {
	Addr     netip.Addr
	Listings []Listing // in the order of the configured zones
}

// Listed reports whether any zone lists the address.
func (r Result) Listed() bool { return len(r.Listings) > 0 }

// answerKind sorts an answer: 127.255.255.0/24 is a refusal,
// the rest of 127.0.0.0/8 a listing, anything else noise.
func answerKind(a netip.Addr) (listed, refused bool) {
	if !a.Is4() {
		return false, false
	}
	v := a.As4()
	if v[0] != 127 {
		return false, false
	}
	return true, v[1] == 255 && v[2] == 255
}

// Check queries every zone concurrently. It returns the listings it found
// and, when some zones could not answer, an error wrapping
// virtplane.ErrUnavailable that names them; the result is then partial.
func (c *Checker) Check(ctx context.Context, addr netip.Addr) (Result, error) {
	if !addr.IsValid() {
		return Result{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "dnsbl: address is not valid")
	}
	addr = addr.WithZone("")
	type answer struct {
		listing *Listing
		err     error
	}
	answers := make([]answer, len(c.zones))
	var wg sync.WaitGroup
	for i, z := range c.zones {
		wg.Go(func() {
			l, err := c.checkZone(ctx, addr, z)
			answers[i] = answer{l, err}
		})
	}
	wg.Wait()
	res := Result{Addr: addr}
	var errs []error
	for _, a := range answers {
		if a.listing != nil {
			res.Listings = append(res.Listings, *a.listing)
		}
		if a.err != nil {
			errs = append(errs, a.err)
		}
	}
	if len(errs) > 0 {
		return res, errors.Join(errs...)
	}
	return res, nil
}

// ZoneError is the failure of one zone's query: Check joins one per
// failed zone, so that a caller can say which zones did not answer
// (ZoneErrors) rather than only that some did not.
type ZoneError struct {
	Zone string
	Err  error
}

func (e *ZoneError) Error() string { return e.Err.Error() }

func (e *ZoneError) Unwrap() error { return e.Err }

// ZoneErrors returns the per-zone failures in an error of Check, in the
// order of the configured zones; errors of another kind are not in it.
func ZoneErrors(err error) []*ZoneError {
	if ze, ok := err.(*ZoneError); ok {
		return []*ZoneError{ze}
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return nil
	}
	var out []*ZoneError
	for _, e := range j.Unwrap() {
		out = append(out, ZoneErrors(e)...)
	}
	return out
}

// checkZone is lookupZone with its error tagged with the zone.
func (c *Checker) checkZone(ctx context.Context, addr netip.Addr, zone string) (*Listing, error) {
	l, err := c.lookupZone(ctx, addr, zone)
	if err != nil {
		return nil, &ZoneError{Zone: zone, Err: err}
	}
	return l, nil
}

func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

func (c *Checker) lookupZone(ctx context.Context, addr netip.Addr, zone string) (*Listing, error) {
	name := QueryName(addr, zone)
	codes, err := c.resolver.LookupNetIP(ctx, "ip4", name)
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("dnsbl zone %q: %w: %w", zone, virtplane.ErrCanceled, err)
		}
		return nil, fmt.Errorf("dnsbl zone %q: lookup %s: %w: %w", zone, name, virtplane.ErrUnavailable, err)
	}
	l := &Listing{Zone: zone}
	for _, code := range codes {
		code = code.Unmap()
		listed, refused := answerKind(code)
		switch {
		case refused:
			return nil, virtplane.Errorf(virtplane.ErrUnavailable, "dnsbl zone %q refused the query for %s (answer %s)", zone, addr, code)
		case listed:
			l.Codes = append(l.Codes, code)
		}
	}
	if len(l.Codes) == 0 {
		return nil, nil // answers outside 127/8 are not listings (wildcards, hijacking resolvers)
	}
	slices.SortFunc(l.Codes, netip.Addr.Compare)
	if c.reasons {
		if txt, err := c.resolver.LookupTXT(ctx, name); err == nil {
			l.Reason = strings.Join(txt, " ")
		}
	}
	return l, nil
}
