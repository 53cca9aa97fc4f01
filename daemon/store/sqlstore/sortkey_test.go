package sqlstore

import (
	"cmp"
	"net/netip"
	"testing"
)

// FuzzSortKey: the stored sort key orders prefixes exactly as IPAM pages
// them (address, then length; IPv4 before IPv6).
func FuzzSortKey(f *testing.F) {
	f.Add([]byte{10, 0, 0, 1}, uint8(32), []byte{10, 0, 0, 2}, uint8(32))
	f.Add([]byte{255, 255, 255, 255}, uint8(32), make([]byte, 16), uint8(128))
	f.Add(make([]byte, 16), uint8(64), make([]byte, 16), uint8(48))
	f.Fuzz(func(t *testing.T, a []byte, abits uint8, b []byte, bbits uint8) {
		pa, ok1 := prefixOf(a, abits)
		pb, ok2 := prefixOf(b, bbits)
		if !ok1 || !ok2 {
			return
		}
		want := pa.Addr().Compare(pb.Addr())
		if want == 0 {
			want = cmp.Compare(pa.Bits(), pb.Bits())
		}
		got := cmp.Compare(sortKey(pa), sortKey(pb))
		if got != want {
			t.Fatalf("%s vs %s: key order %d, address order %d (%s, %s)", pa, pb, got, want, sortKey(pa), sortKey(pb))
		}
	})
}

func prefixOf(b []byte, bits uint8) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(b)
	if !ok || int(bits) > a.BitLen() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, int(bits)), true
}
