package dnsbl

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/virtplane/virtplane"
)

// FuzzQueryName renders query names and parses them back: the labels
// before the zone must spell the address, reversed.
func FuzzQueryName(f *testing.F) {
	f.Add([]byte{192, 0, 2, 99}, "bl.test")
	f.Add([]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, "zen.example.")
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 2}, "bl.test")
	f.Fuzz(func(t *testing.T, raw []byte, zone string) {
		a, ok := netip.AddrFromSlice(raw)
		if !ok {
			return
		}
		nz, err := normalizeZone(zone)
		if err != nil {
			return
		}
		name := QueryName(a, nz)
		prefix, found := strings.CutSuffix(name, "."+nz+".")
		if !found {
			t.Fatalf("QueryName(%s, %q) = %q does not end in the zone", a, nz, name)
		}
		labels := strings.Split(prefix, ".")
		var back netip.Addr
		if a.Is4() {
			if len(labels) != 4 {
				t.Fatalf("QueryName(%s) = %q: want 4 labels", a, name)
			}
			back, err = netip.ParseAddr(labels[3] + "." + labels[2] + "." + labels[1] + "." + labels[0])
		} else {
			if len(labels) != 32 {
				t.Fatalf("QueryName(%s) = %q: want 32 nibbles", a, name)
			}
			var v [16]byte
			for i := 0; i < 32; i++ {
				n, perr := strconv.ParseUint(labels[31-i], 16, 8)
				if perr != nil {
					t.Fatalf("QueryName(%s) = %q: label %q is not a nibble", a, name, labels[31-i])
				}
				v[i/2] |= byte(n) << (4 * (1 - i%2))
			}
			back = netip.AddrFrom16(v)
		}
		if err != nil || back != a {
			t.Fatalf("QueryName(%s) = %q parses back to %s (%v)", a, name, back, err)
		}
	})
}

// FuzzZone checks zone validation: a refused zone yields ErrInvalidArgument
// naming it; an accepted one is a lower-case DNS name without trailing dot.
func FuzzZone(f *testing.F) {
	for _, z := range []string{"bl.test", "ZEN.Spamhaus.org.", "", " ", "a..b", "-a.b", "a_b.c", "ex ample.org", "é.org"} {
		f.Add(z)
	}
	f.Fuzz(func(t *testing.T, zone string) {
		_, err := New(Config{Zones: []string{zone}, Resolver: NewFakeResolver()})
		nz, nerr := normalizeZone(zone)
		if (err == nil) != (nerr == nil) {
			t.Fatalf("New and normalizeZone disagree on %q: %v / %v", zone, err, nerr)
		}
		if err != nil {
			if !errors.Is(err, virtplane.ErrInvalidArgument) || !strings.Contains(err.Error(), strconv.Quote(zone)) {
				t.Fatalf("zone %q: error %q is not ErrInvalidArgument naming the zone", zone, err)
			}
			return
		}
		if nz != strings.ToLower(nz) || strings.HasSuffix(nz, ".") || strings.Contains(nz, "..") || nz == "" {
			t.Fatalf("zone %q normalised to %q", zone, nz)
		}
	})
}
