// Package nettest holds test support for the network packages: Recorder, an
// in-memory kernel that records the netlink requests made to it (for golden
// tests of features the test kernel lacks), Golden, which compares a
// recording with testdata/NAME.golden (UPDATE_GOLDEN=1 rewrites it),
// Handle, a netlink handle bound to a test's network namespace, and a
// traffic helper (Serve, Dial, Send): the test binary re-executed under
// `ip netns exec` as a TCP sink or source, for tests that prove behaviour
// with real traffic (call RunTrafficIfHelper first in TestMain).
//
//	rec := nettest.NewRecorder("eth0", "eth1")
//	h, _ := hostnet.New(hostnet.Config{Netlink: rec})
//	_, _ = h.Apply(ctx, desired)
//	nettest.Golden(t, "bond", rec.Requests())
package nettest
