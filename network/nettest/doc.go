// Package nettest holds test support for the network packages: Recorder, an
// in-memory kernel that records the netlink requests made to it (for golden
// tests of features the test kernel lacks), Golden, which compares a
// recording with testdata/NAME.golden (UPDATE_GOLDEN=1 rewrites it), and
// Handle, a netlink handle bound to a test's network namespace.
//
//	rec := nettest.NewRecorder("eth0", "eth1")
//	h, _ := hostnet.New(hostnet.Config{Netlink: rec})
//	_, _ = h.Apply(ctx, desired)
//	nettest.Golden(t, "bond", rec.Requests())
package nettest
