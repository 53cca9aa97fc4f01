package nettest

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Handle returns a netlink handle whose socket lives in the named network
// namespace, so that requests act there whatever thread the goroutine runs
// on. It is closed at cleanup.
func Handle(t testing.TB, nsName string) *netlink.Handle {
	t.Helper()
	ns, err := netns.GetFromName(nsName)
	require.NoError(t, err)
	h, err := netlink.NewHandleAt(ns)
	require.NoError(t, err)
	t.Cleanup(func() {
		h.Close()
		_ = ns.Close()
	})
	return h
}
