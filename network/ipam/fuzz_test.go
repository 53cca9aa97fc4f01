package ipam

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/virtplane/virtplane"
)

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{
		"10.0.0.0/24", "10.0.0.1/24", "10.0.0.10-10.0.0.99", "10.0.0.99-10.0.0.10", "192.0.2.7",
		"2001:db8::/48", "2001:db8::1-2001:db8::ff", "10.0.0.1-2001:db8::1", "fe80::1%eth0", "",
		"  10.1.0.0/16 ", "::ffff:10.0.0.1", "0.0.0.0/0", "::/0", "10.0.0.0/33", "a-b", "-", "/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, p, err := ParseRange(s)
		if err != nil {
			if !errors.Is(err, virtplane.ErrInvalidArgument) {
				t.Fatalf("ParseRange(%q): error %v is not ErrInvalidArgument", s, err)
			}
			if strings.TrimSpace(s) != "" && !strings.Contains(err.Error(), strconv.Quote(strings.TrimSpace(s))) {
				t.Fatalf("ParseRange(%q): error %q does not name the input", s, err)
			}
			return
		}
		if !r.IsValid() || r.To().Less(r.From()) || r.From().Zone() != "" {
			t.Fatalf("ParseRange(%q) = invalid range %v", s, r)
		}
		// What we print parses back to the same range.
		text := r.String()
		if p.IsValid() {
			text = p.String()
		}
		r2, p2, err := ParseRange(text)
		if err != nil || r2 != r || p2 != p {
			t.Fatalf("ParseRange(%q) = %v %v; reparsing %q gives %v %v %v", s, r, p, text, r2, p2, err)
		}
	})
}

// FuzzParseBlock parses block definitions; the valid ones must build an
// allocator whose first allocations lie inside the block and off its
// exclusions, and the invalid ones must say which value is wrong.
func FuzzParseBlock(f *testing.F) {
	f.Add("10.0.0.0/29", "10.0.0.1", "10.0.0.3-10.0.0.4", "10.0.0.5", 0, false)
	f.Add("10.0.0.0/29", "10.0.1.1", "", "", 0, false)
	f.Add("10.0.0.10-10.0.0.12", "", "10.0.0.11", "", 0, true)
	f.Add("2001:db8::/48", "2001:db8::1", "2001:db8:0:5::/64", "2001:db8:0:7::1", 64, false)
	f.Add("2001:db8::/48", "", "", "", 40, false)
	f.Add("2001:db8::/64", "", "", "", 0, false)
	f.Add("2001:db8::/32", "", "", "", 0, false)
	f.Add("10.0.0.0/24", "", "", "", 24, false)
	f.Add("10.0.0.0/31", "", "", "", 0, false)
	f.Add("::/0", "", "", "", 64, false)
	f.Fuzz(func(t *testing.T, rng, gw, excl, res string, prefixLen int, keep bool) {
		spec := BlockSpec{Range: rng, Gateway: gw, PrefixLen: prefixLen, KeepNetworkBroadcast: keep}
		if excl != "" {
			spec.Excluded = []string{excl}
		}
		if res != "" {
			spec.Reserved = []string{res}
		}
		b, err := ParseBlock(spec)
		if err != nil {
			if !errors.Is(err, virtplane.ErrInvalidArgument) {
				t.Fatalf("ParseBlock(%+v): error %v is not ErrInvalidArgument", spec, err)
			}
			if !namesAValue(err.Error(), spec) {
				t.Fatalf("ParseBlock(%+v): error %q names no input value", spec, err)
			}
			return
		}
		if err := b.Validate(); err != nil {
			t.Fatalf("ParseBlock returned a block that does not validate: %v", err)
		}
		st := newBlockState(b, 0)
		for range 16 {
			off, ok := st.nextAny()
			if !ok {
				break
			}
			p := b.unitPrefix(off)
			if !b.Contains(p) {
				t.Fatalf("block %+v handed out %s outside its range", b, p)
			}
			if b.Gateway.IsValid() && p.Contains(b.Gateway) {
				t.Fatalf("block %+v handed out %s holding the gateway", b, p)
			}
			for _, e := range b.Excluded {
				if e.Contains(p.Addr()) || p.Contains(e.From()) {
					t.Fatalf("block %+v handed out %s on exclusion %s", b, p, e)
				}
			}
			for _, r := range b.Reserved {
				if p.Contains(r) {
					t.Fatalf("block %+v handed out reserved %s by next-free", b, p)
				}
			}
			if b.CIDR.Addr().Is4() && b.CIDR.Bits() <= 30 && !b.KeepNetworkBroadcast &&
				(p.Addr() == b.Range.From() || p.Addr() == b.Range.To()) {
				t.Fatalf("block %+v handed out network or broadcast %s", b, p)
			}
		}
	})
}

func namesAValue(msg string, spec BlockSpec) bool {
	if strings.TrimSpace(spec.Range) == "" && strings.Contains(msg, "range is empty") {
		return true // the missing value is named by its field
	}
	candidates := []string{strings.TrimSpace(spec.Range), strings.TrimSpace(spec.Gateway), fmt.Sprint(spec.PrefixLen)}
	candidates = append(candidates, spec.Excluded...)
	candidates = append(candidates, spec.Reserved...)
	for _, s := range []string{spec.Range, spec.Gateway} {
		if r, p, err := ParseRange(s); err == nil {
			candidates = append(candidates, r.String(), p.String(), r.From().String())
		}
	}
	for _, s := range append(spec.Excluded, spec.Reserved...) {
		if r, _, err := ParseRange(s); err == nil {
			candidates = append(candidates, r.String(), r.From().String())
		}
	}
	for _, raw := range append([]string{spec.Range, spec.Gateway}, append(spec.Excluded, spec.Reserved...)...) {
		if strings.Contains(msg, strconv.Quote(raw)) || strings.Contains(msg, strconv.Quote(strings.TrimSpace(raw))) {
			return true
		}
	}
	for _, c := range candidates {
		c = strings.TrimSpace(c)
		if c != "" && c != "invalid IPRange" && c != "invalid Prefix" && strings.Contains(msg, c) {
			return true
		}
	}
	return false
}
