// Package fake provides an in-memory storage.Pool with every capability and a
// recording storage.Executor, both with fault injection, for testing code
// that uses storage without a backend, and for the drivers' golden-file tests
// of the exact commands they issue.
//
//	pool := fake.New("local", map[string]string{"tier": "ssd"})
//	pool.Fail("Clone", virtplane.ErrUnavailable) // the next clones fail
//	_, err := pool.Clone(ctx, "debian-12", "vm-1-root", storage.CloneLinked)
//
//	ex := &fake.Executor{}
//	ex.On("lvs ", `{"report":[{"lv":[]}]}`, nil)
//	... // run a driver with ex
//	fmt.Print(ex.Transcript()) // one command per line
package fake
