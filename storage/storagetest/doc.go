// Package storagetest is the conformance suite every storage.Pool passes:
// the fake and each real driver (file, lvm, ceph, san) run the same tests,
// so that a caller can count on the same behaviour from every backend.
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Pool {
//			return fake.New("test", nil)
//		})
//	}
//
// Capabilities a pool does not implement are skipped, everything it claims is tested.
package storagetest
