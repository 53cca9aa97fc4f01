package main

import (
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSellAVM(t *testing.T) {
	var out strings.Builder
	require.NoError(t, run(t.Context(), &out, "", "", "42"))
	assert.Contains(t, out.String(), "retry with the same key: same vm")
	assert.Contains(t, out.String(), "is running on node")
	assert.Contains(t, out.String(), "order 42 ended")
	t.Log(out.String())
	// The first-run pool is one of the documentation networks that none of
	// this host's own networks overlaps (on a host at 192.0.2.2/24 it used
	// to hand the host's own address to the first VM).
	m := regexp.MustCompile(`with address \[([0-9.]+)\]`).FindStringSubmatch(out.String())
	require.NotNil(t, m, out.String())
	addr := netip.MustParseAddr(m[1])
	assert.Regexp(t, `^(192\.0\.2|198\.51\.100|203\.0\.113)\.`, addr.String())
	own, err := net.InterfaceAddrs()
	require.NoError(t, err)
	for _, a := range own {
		if n, ok := a.(*net.IPNet); ok {
			p, _ := netip.AddrFromSlice(n.IP)
			assert.NotEqual(t, p.Unmap(), addr, "the VM got an address of this host")
		}
	}
}
