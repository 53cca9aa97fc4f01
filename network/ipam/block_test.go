package ipam

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		in, from, to, cidr string
		bad                string // substring of the error
	}{
		{in: "10.0.0.0/24", from: "10.0.0.0", to: "10.0.0.255", cidr: "10.0.0.0/24"},
		{in: " 10.0.0.5-10.0.0.9 ", from: "10.0.0.5", to: "10.0.0.9"},
		{in: "2001:db8::/126", from: "2001:db8::", to: "2001:db8::3", cidr: "2001:db8::/126"},
		{in: "192.0.2.7", from: "192.0.2.7", to: "192.0.2.7"},
		{in: "::ffff:10.0.0.1-10.0.0.2", from: "10.0.0.1", to: "10.0.0.2"},
		{in: "10.0.0.1/24", bad: `"10.0.0.1/24" has host bits set (did you mean 10.0.0.0/24?)`},
		{in: "10.0.0.9-10.0.0.5", bad: `"10.0.0.9-10.0.0.5" ends before it starts`},
		{in: "10.0.0.1-2001:db8::1", bad: "mixes IPv4 and IPv6"},
		{in: "fe80::/64%eth0", bad: `"fe80::/64%eth0"`},
		{in: "fe80::1%eth0", bad: `"fe80::1%eth0"`},
		{in: "10.0.0.0/33", bad: `"10.0.0.0/33" is not a valid CIDR`},
		{in: "", bad: "range is empty"},
		{in: "pool-a", bad: `"pool-a"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, p, err := ParseRange(tt.in)
			if tt.bad != "" {
				assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
				assert.ErrorContains(t, err, tt.bad)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.from, r.From().String())
			assert.Equal(t, tt.to, r.To().String())
			if tt.cidr != "" {
				assert.Equal(t, tt.cidr, p.String())
			} else {
				assert.False(t, p.IsValid())
			}
		})
	}
}

func TestParseBlockErrorsNameTheValue(t *testing.T) {
	tests := []struct {
		spec BlockSpec
		bad  string
	}{
		{BlockSpec{Range: "10.0.0.0/24", Gateway: "10.0.1.1"}, "gateway 10.0.1.1 is outside"},
		{BlockSpec{Range: "10.0.0.0/24", Gateway: "router"}, `gateway "router"`},
		{BlockSpec{Range: "10.0.0.0/24", Excluded: []string{"10.0.0.250-10.0.1.5"}}, "excluded 10.0.0.250-10.0.1.5 is outside"},
		{BlockSpec{Range: "10.0.0.0/24", Excluded: []string{"x"}}, `"x"`},
		{BlockSpec{Range: "10.0.0.0/24", Reserved: []string{"10.9.9.9"}}, "reserved 10.9.9.9"},
		{BlockSpec{Range: "10.0.0.0/24", PrefixLen: 28}, "prefix delegation is IPv6 only"},
		{BlockSpec{Range: "2001:db8::1-2001:db8::9", PrefixLen: 64}, "needs a CIDR block"},
		{BlockSpec{Range: "2001:db8::/48", PrefixLen: 40}, "prefix length 40 does not fit"},
		{BlockSpec{Range: "2001:db8::/48"}, "more than 2^64"},
		{BlockSpec{Range: "::/0", PrefixLen: 65}, "more than 2^64"},
	}
	for _, tt := range tests {
		t.Run(tt.bad, func(t *testing.T) {
			_, err := ParseBlock(tt.spec)
			assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
			assert.ErrorContains(t, err, tt.bad)
		})
	}
}

func TestBlockUnits(t *testing.T) {
	tests := []struct {
		spec  BlockSpec
		units uint64
		first string
		last  string
	}{
		{BlockSpec{Range: "10.0.0.0/8"}, 1 << 24, "10.0.0.0/32", "10.255.255.255/32"},
		{BlockSpec{Range: "10.0.0.10-10.0.0.12"}, 3, "10.0.0.10/32", "10.0.0.12/32"},
		{BlockSpec{Range: "2001:db8::/48", PrefixLen: 64}, 1 << 16, "2001:db8::/64", "2001:db8:0:ffff::/64"},
		{BlockSpec{Range: "2001:db8::/64"}, ^uint64(0), "2001:db8::/128", "2001:db8::ffff:ffff:ffff:ffff/128"},
		{BlockSpec{Range: "::/0", PrefixLen: 64}, ^uint64(0), "::/64", "ffff:ffff:ffff:ffff::/64"},
	}
	for _, tt := range tests {
		t.Run(tt.spec.Range, func(t *testing.T) {
			b, err := ParseBlock(tt.spec)
			require.NoError(t, err)
			assert.Equal(t, tt.units, b.Units())
			assert.Equal(t, tt.first, b.unitPrefix(0).String())
			assert.Equal(t, tt.last, b.unitPrefix(b.lastOffset()).String())
			assert.Equal(t, b.lastOffset(), b.offsetOf(b.Range.To()))
		})
	}
}

// Blocks too large for a bitmap get the sparse set; allocation there skips
// exclusions and wraps at the end of the 2^64 space.
func TestSparseBlock(t *testing.T) {
	b, err := ParseBlock(BlockSpec{Range: "2001:db8::/64", Gateway: "2001:db8::1",
		Excluded: []string{"2001:db8::2-2001:db8::ffff"}, Reserved: []string{"2001:db8::1:0"}})
	require.NoError(t, err)
	st := newBlockState(b, 0)
	_, sparse := st.bits.(*sparseSet)
	require.True(t, sparse)
	var got []string
	for range 3 {
		off, ok := st.nextAny()
		require.True(t, ok)
		got = append(got, b.unitPrefix(off).Addr().String())
	}
	assert.Equal(t, []string{"2001:db8::1:1", "2001:db8::1:2", "2001:db8::1:3"}, got, "not :: (Subnet-Router anycast), the gateway, the excluded or the reserved")
	require.NoError(t, st.take(b.lastOffset()))
	assert.ErrorIs(t, st.take(b.offsetOf(netip.MustParseAddr("2001:db8::5"))), virtplane.ErrInvalidArgument)
	assert.ErrorIs(t, st.take(b.lastOffset()), virtplane.ErrConflict)
	st.release(b.lastOffset(), 0)
	require.NoError(t, st.take(b.lastOffset()))
}

func TestBitmapNextClear(t *testing.T) {
	for _, units := range []uint64{1, 63, 64, 65, 4096, 4097, 300000} {
		bm := newBitmap(units)
		for off := uint64(0); off < units; off++ {
			bm.set(off)
		}
		_, ok := bm.nextClear(0)
		assert.False(t, ok, "full bitmap of %d", units)
		last := units - 1
		bm.clear(last)
		off, ok := bm.nextClear(0)
		assert.True(t, ok)
		assert.Equal(t, last, off)
		bm.clear(0)
		off, _ = bm.nextClear(0)
		assert.Equal(t, uint64(0), off)
		off, _ = bm.nextClear(1)
		assert.Equal(t, last, off)
	}
}

// The all-zero address of an IPv6 subnet is its Subnet-Router anycast
// address (RFC 4291 2.6.1): never handed out, but in /127 and /128 blocks
// (RFC 6164) or with KeepNetworkBroadcast.
func TestIPv6SubnetRouterAnycastExcluded(t *testing.T) {
	first := func(spec BlockSpec) string {
		t.Helper()
		b, err := ParseBlock(spec)
		require.NoError(t, err)
		off, ok := newBlockState(b, 0).nextAny()
		require.True(t, ok)
		return b.unitPrefix(off).Addr().String()
	}
	assert.Equal(t, "2001:db8::1", first(BlockSpec{Range: "2001:db8::/120"}))
	assert.Equal(t, "2001:db8::1", first(BlockSpec{Range: "2001:db8::/64"}), "sparse too")
	assert.Equal(t, "2001:db8::", first(BlockSpec{Range: "2001:db8::/127"}))
	assert.Equal(t, "2001:db8::", first(BlockSpec{Range: "2001:db8::/120", KeepNetworkBroadcast: true}))
	assert.Equal(t, "2001:db8::", first(BlockSpec{Range: "2001:db8::-2001:db8::9"}), "a range is no subnet")
}

// Refusal names what the allocator never hands out, from the same list.
func TestBlockRefusal(t *testing.T) {
	v4, err := ParseBlock(BlockSpec{Range: "198.51.100.0/29", Gateway: "198.51.100.1", Excluded: []string{"198.51.100.2-198.51.100.3"}})
	require.NoError(t, err)
	v6, err := ParseBlock(BlockSpec{Range: "2001:db8::/120"})
	require.NoError(t, err)
	for a, want := range map[string]string{
		"198.51.100.0": "the network address of block 198.51.100.0/29",
		"198.51.100.7": "the broadcast address of block 198.51.100.0/29",
		"198.51.100.1": "the gateway of block 198.51.100.0/29",
		"198.51.100.3": "excluded from block 198.51.100.0/29 (198.51.100.2-198.51.100.3)",
		"198.51.100.4": "",
	} {
		assert.Equal(t, want, v4.Refusal(netip.MustParseAddr(a)), a)
	}
	assert.Equal(t, "the Subnet-Router anycast address of block 2001:db8::/120", v6.Refusal(netip.MustParseAddr("2001:db8::")))
	assert.Empty(t, v6.Refusal(netip.MustParseAddr("2001:db8::1")))
	kept, err := ParseBlock(BlockSpec{Range: "198.51.100.0/29", KeepNetworkBroadcast: true})
	require.NoError(t, err)
	assert.Empty(t, kept.Refusal(netip.MustParseAddr("198.51.100.0")))
}
