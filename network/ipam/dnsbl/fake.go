package dnsbl

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// FakeResolver is an in-memory Resolver for tests: it answers from the
// records set on it, fails on demand and records every lookup.
type FakeResolver struct {
	mu    sync.Mutex
	a     map[string][]netip.Addr
	txt   map[string][]string
	fail  func(name string) error
	calls []string
}

var _ Resolver = (*FakeResolver)(nil)

// NewFakeResolver returns a resolver that knows no name.
func NewFakeResolver() *FakeResolver {
	return &FakeResolver{a: map[string][]netip.Addr{}, txt: map[string][]string{}}
}

func fqdn(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, ".")) + "."
}

// SetA makes name resolve to addrs.
func (f *FakeResolver) SetA(name string, addrs ...netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.a[fqdn(name)] = slices.Clone(addrs)
}

// SetTXT gives name TXT records.
func (f *FakeResolver) SetTXT(name string, txt ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.txt[fqdn(name)] = slices.Clone(txt)
}

// FailWith makes every lookup call fail first; a non-nil error fails the lookup.
func (f *FakeResolver) FailWith(fail func(name string) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = fail
}

// Calls returns the lookups so far as "A name" or "TXT name".
func (f *FakeResolver) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *FakeResolver) begin(kind, name string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := fqdn(name)
	f.calls = append(f.calls, kind+" "+n)
	if f.fail != nil {
		if err := f.fail(n); err != nil {
			return n, err
		}
	}
	return n, nil
}

func (f *FakeResolver) exists(n string) bool {
	_, a := f.a[n]
	_, t := f.txt[n]
	return a || t
}

// LookupNetIP answers A (network "ip4"), AAAA ("ip6") or both ("ip").
func (f *FakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if err := ctx.Err(); err != nil {
		return nil, &net.DNSError{Err: err.Error(), Name: host}
	}
	n, err := f.begin("A", host)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []netip.Addr
	for _, a := range f.a[n] {
		if network == "ip" || (network == "ip4") == a.Is4() {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return out, nil
}

// LookupTXT answers TXT queries.
func (f *FakeResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, &net.DNSError{Err: err.Error(), Name: name}
	}
	n, err := f.begin("TXT", name)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.exists(n) || len(f.txt[n]) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	return slices.Clone(f.txt[n]), nil
}
